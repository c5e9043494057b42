#if canImport(Glibc)
import Glibc
#endif
import NBD

/// Minimal blocking Unix-socket helpers for the control channel.
public enum UnixSocket {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        /// The C errno behind it.
        public var errno: Int32
        public init(_ what: String, errno code: Int32 = Glibc.errno) {
            description = "\(what): \(String(cString: strerror(code)))"
            errno = code
        }
    }

    private static func socketPath(_ path: String) throws(Failure) -> UnixSocketPath {
        guard let socketPath = UnixSocketPath(path) else { throw Failure("socket path \(path) is too long", errno: ENAMETOOLONG) }
        return socketPath
    }

    /// Connects to the socket at `path`.
    static func connect(_ path: String) throws(Failure) -> Int32 {
        let fd = try socketPath(path).connect()
        guard fd >= 0 else { throw Failure("cannot connect to \(path)") }
        return fd
    }

    /// Binds and listens at `path` with mode 0600, creating the parent directory.
    /// A stale socket file (nobody listening) is replaced; a live one is EADDRINUSE.
    public static func listen(_ path: String) throws(Failure) -> Int32 {
        let socketPath = try socketPath(path)
        try makeParentDirectory(of: path)
        if let fd = try? connect(path) {
            close(fd)
            throw Failure("another server is listening on \(path)", errno: EADDRINUSE)
        }
        unlink(path)
        let fd = socketPath.listen(backlog: 64)
        guard fd >= 0 else { throw Failure("cannot listen on \(path)") }
        return fd
    }

    /// `mkdir -p` of the path's directory, mode 0755.
    public static func makeParentDirectory(of path: String) throws(Failure) {
        if let failed = UnixSocketPath.makeParentDirectories(of: path) {
            throw Failure("cannot create directory \(failed)")
        }
    }

    /// Sets receive and send time-outs so that a silent peer cannot hold a thread forever.
    static func setTimeout(_ fd: Int32, seconds: Int) {
        var value = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Reads one `\n`-terminated line of at most `limit` bytes. nil at EOF before any byte.
    static func readLine(_ fd: Int32, limit: Int) throws(Failure) -> [UInt8]? {
        var line = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_PEEK)) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw Failure("read") }
            if n == 0 { return line.isEmpty ? nil : line }
            // Consume up to and including the newline, if it is in what we peeked.
            let take = chunk[..<n].firstIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? n
            let got = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, take, 0) }
            guard got == take else { throw Failure("read") }
            line += chunk[..<take]
            let complete = line.last == UInt8(ascii: "\n")
            if complete { line.removeLast() }
            guard line.count <= limit else { throw Failure("request longer than \(limit) bytes", errno: EMSGSIZE) }
            if complete { return line }
        }
    }

    /// Writes all of `bytes`.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(Failure) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw Failure("write") }
            sent += n
        }
    }
}
