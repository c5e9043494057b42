import CFuse3
import NBD
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The directory a `FUSEExport` serves: inode 1 is the root, every export of the
/// registry a regular file named after it (size = the export's size, mode 0600,
/// owned by root). Its methods answer libfuse's requests; every one replies exactly
/// once, with an errno for anything it cannot do.
final class FileSystem: Sendable {
    let exports: ExportRegistry
    let inodes = InodeTable()
    let maxTransfer: Int
    /// Whether INIT asks the kernel for FUSE over io_uring (`FUSERingQueue`).
    let wantsRing: Bool
    /// The kernel has taken the INIT reply: ring entries may register.
    let initialized = Atomic<Bool>(false)
    /// Every file's times: when the export started.
    let startTime: timespec
    /// How long the kernel may cache names and attributes: not at all, since a device can be
    /// removed, added again or given its disksize at any time and `attach` must see it at
    /// once (the I/O path never asks for attributes).
    static let cacheSeconds = 0.0
    static let rootInode: fuse_ino_t = 1

    init(exports: ExportRegistry, maxTransfer: Int, wantsRing: Bool) {
        self.exports = exports
        self.maxTransfer = maxTransfer
        self.wantsRing = wantsRing
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        startTime = now
    }

    /// The export a file name stands for (the registry's empty-name default does not count).
    func export(named name: String) -> (any BlockExport)? {
        name.isEmpty ? nil : exports.lookup(name)
    }

    /// The export behind an inode, if it still exists under the same name.
    func export(inode: fuse_ino_t) -> (any BlockExport)? {
        inodes.name(of: inode).flatMap(export(named:))
    }

    /// The file system for a request (the userdata given to `fuse_session_new`).
    @inline(__always)
    static func of(_ request: fuse_req_t) -> Unmanaged<FileSystem> {
        // FUSEExport passed its FileSystem, which outlives the session.
        Unmanaged<FileSystem>.fromOpaque(fuse_req_userdata(request).unsafelyUnwrapped)
    }
}

/// An open file: its attachment to the export, held for the handle's lifetime so that
/// hot-remove sees the device in use (EBUSY) and READ and WRITE find the export without
/// a lookup (the handle's `fh` is this object, retained).
final class OpenFile: Sendable {
    /// The client's hold on the export (`ExportRegistry.open`): hot-remove and reset
    /// refuse with EBUSY until the handle is released.
    let attachment: ExportAttachment
    /// `attachment.export`, kept at hand for the I/O path.
    let export: any BlockExport

    init(_ attachment: ExportAttachment) {
        self.attachment = attachment
        export = attachment.export
    }

    /// The object a handle's `fh` points to.
    @inline(__always)
    static func of(_ info: UnsafeMutablePointer<fuse_file_info>?) -> Unmanaged<OpenFile>? {
        guard let info else { return nil }
        return of(handle: info.pointee.fh)
    }

    @inline(__always)
    static func of(handle: UInt64) -> Unmanaged<OpenFile>? {
        guard let pointer = UnsafeRawPointer(bitPattern: UInt(handle)) else { return nil }
        return Unmanaged<OpenFile>.fromOpaque(pointer)
    }
}
