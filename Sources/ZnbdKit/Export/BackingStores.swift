import Foundation
import NBDBacking
import SwiftZram
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What znbd's devices open for `backing_dev`.
public enum BackingStores {
    /// NBD URIs (`nbd://`, `nbds://`, `nbd+unix://`, `nbds+unix://`) go to an NBD export
    /// through libnbd; anything else is a block device or a regular file. An `nbd…://`
    /// scheme libnbd knows but znbd does not use (`nbd+vsock://`) is refused as a URI,
    /// never created as a file of that name.
    public static let opener: BackingStoreOpener = { name throws(ZramError) in
        if NBDURI.isURI(name) { return try NBDBackingStore.open(name) }
        try refuseOwnExport(name)
        return try FileBackingStore.open(name)
    }

    /// File systems this process serves (its FUSE export): a backing device on one would
    /// have znbd wait for itself. A read of a written-back page would block the thread
    /// that must answer it (with the FUSE ring, the very same thread).
    private static let servedFileSystems = Mutex<Set<UInt64>>([])

    /// Marks the file system mounted at `mountPoint` as served by this process.
    public static func refuseBacking(onFileSystemAt mountPoint: String) {
        var status = stat()
        guard stat(mountPoint, &status) == 0 else { return }
        servedFileSystems.withLock { _ = $0.insert(UInt64(status.st_dev)) }
    }

    /// `EINVAL` for a file in the served file systems, or a loop device over one.
    private static func refuseOwnExport(_ path: String) throws(ZramError) {
        let served = servedFileSystems.withLock { $0 }
        guard !served.isEmpty else { return }
        var status = stat()
        guard stat(path, &status) == 0 else { return }  // opening it reports why
        var file = path
        if status.st_mode & S_IFMT == S_IFBLK {
            let device = "\(majorNumber(status.st_rdev)):\(minorNumber(status.st_rdev))"
            guard let backing = try? String(contentsOfFile: "/sys/dev/block/\(device)/loop/backing_file", encoding: .utf8) else { return }
            file = backing.trimmingCharacters(in: CharacterSet.whitespacesAndNewlines)
            guard stat(file, &status) == 0 else { return }
        }
        guard served.contains(UInt64(status.st_dev)) else { return }
        throw ZramError(.invalidArgument, "\(path) is \(file == path ? "a file" : "a loop device over \(file)") in znbd's own FUSE export; a device cannot write back to znbd itself")
    }

    /// glibc's `major()`/`minor()` (macros Swift does not import).
    private static func majorNumber(_ device: dev_t) -> UInt64 { (UInt64(device) >> 8) & 0xfff | (UInt64(device) >> 32) & ~0xfff }
    private static func minorNumber(_ device: dev_t) -> UInt64 { UInt64(device) & 0xff | (UInt64(device) >> 12) & ~0xff }
}
