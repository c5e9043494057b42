import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

extension UnixSocket {
    /// What is at a socket path.
    public enum PathState: Sendable, Equatable {
        /// Nothing.
        case absent
        /// A socket a server accepts on (or whose backlog is full).
        case live
        /// A socket nobody listens on: left behind by a server that died.
        case dead
        /// A regular file, directory, symlink or anything else that is not a socket.
        case notASocket
    }

    /// Looks at `path` without following a symlink and, for a socket, tries to connect
    /// without blocking: a refused connection is a dead socket.
    ///
    /// - Throws: ``UnixSocketError`` when the state cannot be told (e.g. `EACCES`).
    public static func probe(_ path: String) throws(UnixSocketError) -> PathState {
        var status = stat()
        if lstat(path, &status) != 0 {
            let error = Errno.lastError
            if error == .noSuchFileOrDirectory { return .absent }
            throw UnixSocketError(.system(operation: "stat", error), path: path)
        }
        guard status.st_mode & S_IFMT == S_IFSOCK else { return .notASocket }
        let address = try UnixSocketAddress(path)
        let fd = try openSocket(path: path, nonBlocking: true)
        defer { _ = try? fd.close() }
        if address.withSockaddr({ Glibc.connect(fd.rawValue, $0, $1) }) == 0 { return .live }
        switch Errno.lastError {
        case .connectionRefused: return .dead
        case .resourceTemporarilyUnavailable, .nowInProgress: return .live  // backlog full: a server is there
        case .noSuchFileOrDirectory: return .absent  // removed since the lstat
        case let error: throw UnixSocketError(.system(operation: "probe", error), path: path)
        }
    }
}
