#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Checks and reads the files TLS credentials come from, with errors that name the file.
enum CredentialFile {
    /// Throws unless `path` is a readable regular file.
    static func checkReadable(_ path: String, _ role: String) throws(TLSError) {
        var st = stat()
        guard stat(path, &st) == 0 else { throw TLSError("\(role) \(path): \(String(cString: strerror(errno)))") }
        guard st.st_mode & S_IFMT == S_IFREG else { throw TLSError("\(role) \(path) is not a regular file") }
        guard access(path, R_OK) == 0 else { throw TLSError("\(role) \(path): \(String(cString: strerror(errno)))") }
    }

    /// Throws unless `path` is a directory.
    static func checkDirectory(_ path: String, _ role: String) throws(TLSError) {
        var st = stat()
        guard stat(path, &st) == 0 else { throw TLSError("\(role) \(path): \(String(cString: strerror(errno)))") }
        guard st.st_mode & S_IFMT == S_IFDIR else { throw TLSError("\(role) \(path) is not a directory") }
    }

    /// Whether `path` exists and can be read (optional files).
    static func isReadable(_ path: String) -> Bool { access(path, R_OK) == 0 }

    /// Whether users other than the owner may read `path` (a secret should not be).
    static func isReadableByOthers(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && st.st_mode & (S_IRGRP | S_IROTH) != 0
    }

    /// The whole file as UTF-8 text (at most `limit` bytes).
    static func readText(_ path: String, _ role: String, limit: Int = 1 << 20) throws(TLSError) -> String {
        try checkReadable(path, role)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw TLSError("\(role) \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw TLSError("\(role) \(path): \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
            guard bytes.count <= limit else { throw TLSError("\(role) \(path) is larger than \(limit) bytes") }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
