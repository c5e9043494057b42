import CPlatform
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Blocking AF_UNIX stream sockets: connecting, and listening with a private (0600)
/// socket file that never replaces a live server or a file that is not a socket.
public enum UnixSocket {
    /// A connected, close-on-exec stream socket.
    public static func connect(to path: String) throws(UnixSocketError) -> FileDescriptor {
        let address = try UnixSocketAddress(path)
        let fd = try openSocket(path: path)
        do {
            try valueOrErrno(retryOnInterrupt: false) { address.withSockaddr { Glibc.connect(fd.rawValue, $0, $1) } }
        } catch {
            _ = try? fd.close()
            throw UnixSocketError(.system(operation: "connect to", error), path: path)
        }
        return fd
    }

    /// The user id of the process that listens at the other end of connected `fd`
    /// (`SO_PEERCRED`, recorded when it called `listen`).
    public static func peerUserID(of fd: FileDescriptor) throws(Errno) -> uid_t {
        var uid: uid_t = 0
        try valueOrErrno { cplatform_peer_uid(fd.rawValue, &uid) }
        return uid
    }

    /// A listening, close-on-exec stream socket at `path`, whose file has mode 0600.
    ///
    /// Before anything is unlinked, what is at `path` is checked (``probe(_:)``): a live
    /// server means `.serverAlive`, a file that is not a socket means `.notASocket`, and
    /// only a socket nobody listens on is replaced.
    ///
    /// Linux creates the socket file with the inode's mode masked by the umask, so `fchmod`
    /// before `bind` narrows it without touching the process-wide umask (which would race
    /// with other threads creating files, and with spawned children).
    ///
    /// - Parameters:
    ///   - backlog: `listen`'s backlog.
    ///   - createParentDirectories: `mkdir -p` (mode 0755) of the socket's directory first.
    public static func listen(
        at path: String, backlog: Int32, createParentDirectories: Bool = true
    ) throws(UnixSocketError) -> FileDescriptor {
        let address = try UnixSocketAddress(path)
        if createParentDirectories {
            do {
                try Directories.createParents(of: path)
            } catch {
                throw UnixSocketError(.system(operation: "create the directory of", error), path: path)
            }
        }
        switch try probe(path) {
        case .absent: break
        case .live: throw UnixSocketError(.serverAlive, path: path)
        case .notASocket: throw UnixSocketError(.notASocket, path: path)
        case .dead:
            if unlink(path) != 0 && errno != ENOENT {
                throw UnixSocketError(.system(operation: "remove the stale socket", .lastError), path: path)
            }
        }
        let fd = try openSocket(path: path)
        do {
            try valueOrErrno { fchmod(fd.rawValue, 0o600) }
        } catch {
            _ = try? fd.close()
            throw UnixSocketError(.system(operation: "fchmod the socket for", error), path: path)
        }
        do {
            try valueOrErrno(retryOnInterrupt: false) { address.withSockaddr { Glibc.bind(fd.rawValue, $0, $1) } }
        } catch {
            _ = try? fd.close()
            // Someone bound the path between the probe and here.
            if error == .addressInUse { throw UnixSocketError(.serverAlive, path: path) }
            throw UnixSocketError(.system(operation: "bind", error), path: path)
        }
        do {
            try valueOrErrno { Glibc.listen(fd.rawValue, backlog) }
        } catch {
            _ = try? fd.close()
            unlink(path)
            throw UnixSocketError(.system(operation: "listen on", error), path: path)
        }
        return fd
    }

    /// A new close-on-exec AF_UNIX stream socket.
    static func openSocket(path: String, nonBlocking: Bool = false) throws(UnixSocketError) -> FileDescriptor {
        var type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        if nonBlocking { type |= Int32(SOCK_NONBLOCK.rawValue) }
        do {
            return FileDescriptor(rawValue: try valueOrErrno { socket(AF_UNIX, type, 0) })
        } catch {
            throw UnixSocketError(.system(operation: "create a socket for", error), path: path)
        }
    }
}
