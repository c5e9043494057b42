import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A directory where a root daemon keeps sockets, pidfiles, logs and state: it must be
/// ours alone, or another user could swap a file in it for a symlink or replace a socket.
public enum RuntimeDirectory {
    /// Creates `path` with mode 0700 when it is missing (its parents 0755), then checks
    /// that it is a directory, not a symlink, owned by the effective user and not
    /// writable by group or others, and that no directory above it can be renamed
    /// by another user (each is owned by root or us, and not writable by others
    /// unless sticky, as `/tmp` is).
    public static func prepare(_ path: String) throws(RuntimeDirectoryError) {
        do {
            try Directories.createParents(of: path)
        } catch {
            throw RuntimeDirectoryError(path: path, problem: .system(operation: "create the parents of", error))
        }
        let created = mkdir(path, 0o700) == 0
        if !created && errno != EEXIST {
            throw RuntimeDirectoryError(path: path, problem: .system(operation: "create", .lastError))
        }
        do {
            try check(path)
        } catch {
            if created { rmdir(path) }  // refused: leave nothing behind in an unsafe place
            throw error
        }
    }

    /// The checks of ``prepare(_:)`` without creating anything.
    public static func check(_ path: String) throws(RuntimeDirectoryError) {
        let status = try statusWithoutFollowing(path, of: path)
        guard status.st_mode & S_IFMT != S_IFLNK else { throw RuntimeDirectoryError(path: path, problem: .symlink) }
        guard status.st_mode & S_IFMT == S_IFDIR else { throw RuntimeDirectoryError(path: path, problem: .notADirectory) }
        guard status.st_uid == geteuid() else {
            throw RuntimeDirectoryError(path: path, problem: .ownedByOtherUser(status.st_uid))
        }
        guard status.st_mode & (S_IWGRP | S_IWOTH) == 0 else {
            throw RuntimeDirectoryError(path: path, problem: .writableByOthers(status.st_mode & 0o7777))
        }
        for ancestor in ancestors(of: path) {
            var parent = stat()
            guard stat(ancestor, &parent) == 0 else {
                throw RuntimeDirectoryError(path: path, problem: .system(operation: "stat \(ancestor), a parent of", .lastError))
            }
            let trusted = parent.st_uid == 0 || parent.st_uid == geteuid()
            let closed = parent.st_mode & (S_IWGRP | S_IWOTH) == 0 || parent.st_mode & S_ISVTX != 0
            guard trusted && closed else {
                throw RuntimeDirectoryError(path: path, problem: .unsafeParent(ancestor, owner: parent.st_uid))
            }
        }
    }

    private static func statusWithoutFollowing(_ target: String, of path: String) throws(RuntimeDirectoryError) -> stat {
        var status = stat()
        guard lstat(target, &status) == 0 else {
            throw RuntimeDirectoryError(path: path, problem: .system(operation: "stat", .lastError))
        }
        return status
    }

    /// The directories above `path`, nearest first (relative paths are taken from the
    /// working directory).
    static func ancestors(of path: String) -> [String] {
        var absolute = path
        if !path.hasPrefix("/") {
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX))
            guard getcwd(&buffer, buffer.count) != nil else { return [] }
            absolute = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) + "/" + path
        }
        var parts = absolute.split(separator: "/").map(String.init)
        var result: [String] = []
        while !parts.isEmpty {
            parts.removeLast()
            result.append("/" + parts.joined(separator: "/"))
        }
        return result
    }
}

/// Why a runtime directory is not safe to use.
public struct RuntimeDirectoryError: Error, CustomStringConvertible, Sendable {
    public enum Problem: Sendable, Equatable {
        case symlink
        case notADirectory
        case ownedByOtherUser(uid_t)
        case writableByOthers(mode_t)
        case unsafeParent(String, owner: uid_t)
        case system(operation: String, Errno)
    }

    public let path: String
    public let problem: Problem

    /// The errno kind that stands for this failure.
    public var errno: Errno {
        switch problem {
        case .symlink: .tooManySymbolicLinkLevels
        case .notADirectory: .notDirectory
        case .ownedByOtherUser, .writableByOthers, .unsafeParent: .permissionDenied
        case .system(_, let errno): errno
        }
    }

    public var description: String {
        let refuse = "refusing to use it as the runtime directory"
        switch problem {
        case .symlink: return "\(path) is a symbolic link; \(refuse)"
        case .notADirectory: return "\(path) is not a directory; \(refuse)"
        case .ownedByOtherUser(let owner):
            return "\(path) is owned by uid \(owner), not by uid \(geteuid()) running znbd; \(refuse)"
        case .writableByOthers(let mode):
            return "\(path) is writable by group or others (mode \(String(mode, radix: 8))); \(refuse) (chmod go-w it)"
        case .unsafeParent(let parent, let owner):
            return "\(parent), above \(path), is owned by uid \(owner) or writable by others; \(refuse)"
        case .system(let operation, let errno): return "cannot \(operation) \(path): \(errno)"
        }
    }
}
