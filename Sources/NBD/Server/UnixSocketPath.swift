#if canImport(Glibc)
import Glibc
#endif

/// A filesystem path for an AF_UNIX socket: connecting, listening with a private
/// (0600) socket file, and `mkdir -p` of its directory. Shared by the NBD
/// listener, znbd's control socket and the protocol benchmark's client.
public struct UnixSocketPath: Sendable {
    public let path: String
    private let address: sockaddr_un

    /// Fails when `path` is empty or does not fit in `sun_path`.
    public init?(_ path: String) {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        self.path = path
        self.address = address
    }

    /// A connected, close-on-exec stream socket; -1 with errno set on failure.
    public func connect() -> Int32 {
        openSocket { fd in withSockaddr { Glibc.connect(fd, $0, $1) } }
    }

    /// A listening, close-on-exec stream socket whose file is created with mode 0600;
    /// -1 with errno set on failure (the path must not exist).
    ///
    /// Linux creates the file with the socket inode's mode masked by the umask, so
    /// `fchmod` before `bind` narrows it without touching the process-wide umask,
    /// which would race with other threads creating files (and with spawned children).
    public func listen(backlog: Int32) -> Int32 {
        openSocket { fd in
            guard fchmod(fd, 0o600) == 0, withSockaddr({ Glibc.bind(fd, $0, $1) }) == 0 else { return -1 }
            return Glibc.listen(fd, backlog)
        }
    }

    /// `mkdir -p`, mode 0755, of the directory holding `path` (a socket, a pidfile);
    /// returns the directory that could not be created, with errno set, or nil.
    public static func makeParentDirectories(of path: String) -> String? {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return nil }
        var prefix = path.hasPrefix("/") ? "" : "."
        for part in path[..<slash].split(separator: "/") {
            prefix += "/" + part
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST { return prefix }
        }
        return nil
    }

    /// A new AF_UNIX stream socket prepared by `setUp` (0 on success); closed again on failure.
    private func openSocket(_ setUp: (Int32) -> Int32) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return -1 }
        guard setUp(fd) == 0 else {
            let code = errno
            close(fd)
            errno = code
            return -1
        }
        return fd
    }

    private func withSockaddr(_ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
        withUnsafePointer(to: address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }
}
