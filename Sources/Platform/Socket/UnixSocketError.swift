import SystemPackage

/// Why a Unix socket could not be connected to or listened on.
public struct UnixSocketError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Equatable {
        /// The path is empty or longer than `sun_path` holds (`ENAMETOOLONG`).
        case pathTooLong
        /// A server answers on the path (`EADDRINUSE`); nothing was unlinked.
        case serverAlive
        /// Something other than a socket is at the path (`EEXIST`); nothing was unlinked.
        case notASocket
        /// A system call failed.
        case system(operation: String, Errno)
    }

    public let kind: Kind
    public let path: String

    public init(_ kind: Kind, path: String) {
        self.kind = kind
        self.path = path
    }

    /// The errno kind that stands for this failure.
    public var errno: Errno {
        switch kind {
        case .pathTooLong: .fileNameTooLong
        case .serverAlive: .addressInUse
        case .notASocket: .fileExists
        case .system(_, let errno): errno
        }
    }

    public var description: String {
        switch kind {
        case .pathTooLong: "socket path \(path) is empty or too long"
        case .serverAlive: "a server is already listening on \(path); stop it or choose another path"
        case .notASocket: "\(path) exists and is not a socket; refusing to replace it"
        case .system(let operation, let errno): "cannot \(operation) \(path): \(errno)"
        }
    }
}
