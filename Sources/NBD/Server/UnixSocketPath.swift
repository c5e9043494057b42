#if canImport(Glibc)
import Glibc
#endif

/// A filesystem path for an AF_UNIX socket: the address, a private (0600) bind
/// and `mkdir -p` of its directory. Shared by the NBD listener and znbd's control socket.
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

    /// `connect(2)`; returns its result (errno is set on -1).
    public func connect(_ fd: Int32) -> Int32 {
        withSockaddr { Glibc.connect(fd, $0, $1) }
    }

    /// Binds `fd` so that the socket file is created with mode 0600.
    ///
    /// Linux creates the file with the socket inode's mode masked by the umask, so
    /// `fchmod` before `bind` narrows it without touching the process-wide umask,
    /// which would race with other threads creating files (and with spawned children).
    public func bindPrivate(_ fd: Int32) -> Int32 {
        guard fchmod(fd, 0o600) == 0 else { return -1 }
        return withSockaddr { Glibc.bind(fd, $0, $1) }
    }

    /// `mkdir -p` of the directory holding the socket, mode 0755; returns the
    /// directory that could not be created, with errno set, or nil.
    public func makeParentDirectories() -> String? {
        Self.makeParentDirectories(of: path)
    }

    /// `mkdir -p` of the directory holding any file `path` (a socket, a pidfile).
    public static func makeParentDirectories(of path: String) -> String? {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return nil }
        var prefix = path.hasPrefix("/") ? "" : "."
        for part in path[..<slash].split(separator: "/") {
            prefix += "/" + part
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST { return prefix }
        }
        return nil
    }

    private func withSockaddr(_ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
        withUnsafePointer(to: address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }
}
