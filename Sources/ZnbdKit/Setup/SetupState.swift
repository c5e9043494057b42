import Foundation
import Platform
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// What `znbd swapon` and `znbd mount` set up, kept in `state.json` in the
/// runtime directory so that `swapoff` and `umount` undo exactly that.
///
/// Every step is recorded as soon as it is done, so a setup that fails (or is
/// killed) half way is undone by the same code that undoes a finished one:
/// each field that is set names one thing still to undo.
public struct SetupState: Codable, Sendable {
    /// The server, when `swapon` or `mount` started it (nil when it was already running).
    var daemon: Daemon?
    /// The server the recorded devices live on (its control and NBD sockets).
    public var control: String?
    public var unix: String?
    public var swaps: [Use] = []
    public var mounts: [Use] = []

    public init() {}

    struct Daemon: Codable, Sendable {
        public var pid: Int32
        public var control: String
        public var unix: String
    }

    /// One device and how the kernel reaches it, in the order it was set up.
    public struct Use: Codable, Sendable {
        /// The device name the server gave (`zram3`), once hot-added.
        public var device: String?
        /// `nbd` (nbd-client) or `fuse` (nbdfuse + losetup).
        var method: String?
        /// `/dev/nbdK` attached with nbd-client.
        var nbdDevice: String?
        /// nbdfuse's mount point and pid.
        var fuseMountPoint: String?
        var fusePid: Int32?
        /// The loop device over the nbdfuse file.
        var loopDevice: String?
        /// Swap: whether `swapon` succeeded, and its priority.
        public var swapActive: Bool = false
        public var priority: Int?
        /// What the device was asked to be, so `swapon` again can tell what differs
        /// (nil in state files written before these were recorded).
        var size: UInt64?
        var algorithm: String?
        var memLimit: UInt64?
        var options: String?
        var writebackDevice: String?
        /// Automatic tiering and its watermark (nil tiering: not recorded, not compared).
        var tiering: Bool?
        var tieringHighWatermark: UInt64?
        /// Mount: where, which file system, whether it is mounted, and whether we made the directory.
        public var mountPoint: String?
        public var fsType: String?
        public var mounted: Bool = false
        var createdMountPoint: Bool = false

        /// The block device the kernel uses.
        public var blockDevice: String? { nbdDevice ?? loopDevice }

        /// Nothing left to undo.
        public var isEmpty: Bool {
            device == nil && nbdDevice == nil && fuseMountPoint == nil && loopDevice == nil && !swapActive && !mounted
                && !createdMountPoint
        }
    }

    /// Nothing to undo (the server's address alone is not worth keeping).
    public var isEmpty: Bool { daemon == nil && swaps.isEmpty && mounts.isEmpty }

    /// Reads the state file (never through a symlink); a missing one is an empty state.
    public static func load(from path: String) throws -> SetupState {
        let bytes: [UInt8]
        do {
            guard let read = try PrivateFile.read(path) else { return SetupState() }
            bytes = read
        } catch {
            throw Tool.Failure(description: "cannot read \(path): \(error)\(Self.symlinkNote(error))")
        }
        do {
            return try JSONDecoder().decode(SetupState.self, from: Data(bytes))
        } catch {
            throw Tool.Failure(description: "\(path) is not a znbd state file (\(error)); move it away if nothing is set up")
        }
    }

    /// Writes the state atomically as a private (0600) file, or removes the file when there
    /// is nothing left to undo.
    func save(to path: String) throws {
        if isEmpty {
            if unlink(path) != 0 && errno != ENOENT {
                throw Tool.Failure(description: "cannot remove \(path): \(String(cString: strerror(errno)))")
            }
            return
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let bytes = Array(try encoder.encode(self))
        do {
            try PrivateFile.writeAtomically(bytes, to: path)
        } catch {
            throw Tool.Failure(description: "cannot write \(path): \(error)")
        }
    }

    private static func symlinkNote(_ error: Errno) -> String {
        error == .tooManySymbolicLinkLevels ? " (a symlink; refusing to follow it)" : ""
    }
}

/// An exclusive lock on the runtime directory itself (flock on the directory's
/// descriptor, so no lock file is left behind): one swapon/swapoff/mount/umount at a time.
final class RuntimeLock {
    private let fd: Int32

    /// Creates the runtime directory (0700) if needed and refuses one that another user
    /// owns or can write to, before anything in it is read or created.
    public init(_ paths: RuntimePaths) throws {
        do {
            try RuntimeDirectory.prepare(paths.directory)
        } catch {
            throw Tool.Failure(description: "\(error)")
        }
        fd = open(paths.directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw Tool.Failure(description: "cannot open \(paths.directory): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX) == 0 else {
            let code = errno
            close(fd)
            throw Tool.Failure(description: "cannot lock \(paths.directory): \(String(cString: strerror(code)))")
        }
    }

    deinit { close(fd) }  // releases the lock

    static func makeDirectory(_ path: String) throws {
        do {
            try FileManager.default.createDirectory(
                atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        } catch {
            throw Tool.Failure(description: "cannot create \(path): \(error.localizedDescription)")
        }
    }
}
