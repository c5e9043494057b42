import CPlatform
import Platform
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

extension FileBackingStore {
    /// Opens what a `backing_dev` path names.
    ///
    /// - A block device is claimed exclusively (`O_EXCL`), as the kernel's zram claims
    ///   it: a mounted device or one another store holds is `EBUSY`. A symbolic link
    ///   to a block device (`/dev/disk/by-id/...`) is followed. A device under one
    ///   4 KiB page is `EINVAL`, as in the kernel (which also refuses zero-sized devices).
    /// - A regular file is created when missing (mode 0600), never opened through a
    ///   symbolic link, and locked (`flock`) so that two stores cannot share it.
    ///   An existing one must be ours and writable by no one else (`EINVAL` otherwise:
    ///   another user could read the pages written back, or change them); one that
    ///   group or others can read is narrowed to 0600. `prepare(capacity:)` sizes it.
    /// - Anything else (a directory, a FIFO, a socket, a character device, a link to
    ///   one of them or to a file) is `EINVAL`, without blocking.
    ///
    /// - Parameter path: an absolute path; the daemon's working directory means nothing
    ///   to whoever names the path.
    public static func open(_ path: String) throws(ZramError) -> FileBackingStore {
        guard path.hasPrefix("/") else {
            throw ZramError(.invalidArgument, "\(path): a backing device needs an absolute path")
        }
        // A file created or removed between lstat and open is looked at once more.
        for _ in 0..<2 {
            var status = stat()
            guard lstat(path, &status) == 0 else {
                let error = Errno.lastError
                guard error == .noSuchFileOrDirectory else { throw openFailure(path, error) }
                if let store = try createFile(path) { return store }
                continue
            }
            switch status.st_mode & S_IFMT {
            case S_IFREG:
                return try openExisting(path, .regularFile, followLink: false)
            case S_IFBLK:
                return try openExisting(path, .blockDevice, followLink: false)
            case S_IFLNK:
                var target = stat()
                if stat(path, &target) == 0 && target.st_mode & S_IFMT == S_IFBLK {
                    return try openExisting(path, .blockDevice, followLink: true)
                }
                throw refusal(path, "is a symbolic link; only a link to a block device is followed")
            default:
                throw refusal(path, "is \(fileTypeName(status.st_mode))")
            }
        }
        throw refusal(path, "changed while it was being opened")
    }

    /// Creates a missing file exclusively (`O_CREAT | O_EXCL` never follows a link);
    /// nil when something appeared at `path` in the meantime.
    private static func createFile(_ path: String) throws(ZramError) -> FileBackingStore? {
        let flags = O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC
        let descriptor = cplatform_open(path, flags, 0o600)
        guard descriptor >= 0 else {
            let error = Errno.lastError
            if error == .fileExists { return nil }
            throw openFailure(path, error)
        }
        return try finishOpening(path, FileDescriptor(rawValue: descriptor), .regularFile)
    }

    private static func openExisting(
        _ path: String, _ medium: Medium, followLink: Bool
    ) throws(ZramError) -> FileBackingStore {
        // O_NONBLOCK: whatever replaced the file since lstat (a FIFO) cannot block the open.
        var flags = O_RDWR | O_CLOEXEC | O_NONBLOCK
        if !followLink { flags |= O_NOFOLLOW }
        // On a block device, O_EXCL without O_CREAT is the exclusive claim.
        if medium == .blockDevice { flags |= O_EXCL }
        let descriptor = cplatform_open(path, flags, 0)
        guard descriptor >= 0 else { throw openFailure(path, Errno.lastError) }
        return try finishOpening(path, FileDescriptor(rawValue: descriptor), medium)
    }

    /// Checks what was opened, claims it, measures it and switches to direct I/O.
    private static func finishOpening(
        _ path: String, _ fd: FileDescriptor, _ medium: Medium
    ) throws(ZramError) -> FileBackingStore {
        do throws(ZramError) {
            var status = stat()
            guard fstat(fd.rawValue, &status) == 0 else { throw openFailure(path, .lastError) }
            let expected = medium == .blockDevice ? S_IFBLK : S_IFREG
            guard status.st_mode & S_IFMT == expected else {
                throw refusal(path, "changed while it was being opened (now \(fileTypeName(status.st_mode)))")
            }
            let size: UInt64
            let directAllowed: Bool
            switch medium {
            case .regularFile:
                try checkPrivate(path, fd, status)
                if flock(fd.rawValue, LOCK_EX | LOCK_NB) != 0 {
                    let error = Errno.lastError
                    if error == .wouldBlock {
                        throw ZramError(.busy, "\(path): already the backing file of another device")
                    }
                    throw openFailure(path, error)
                }
                size = UInt64(status.st_size)
                directAllowed = true
            case .blockDevice:
                do throws(Errno) {
                    size = try BlockDevice.size(fd)
                    let blockSize = try BlockDevice.logicalBlockSize(fd)
                    directAllowed = blockSize > 0 && directAlignment % blockSize == 0
                } catch {
                    throw openFailure(path, error)
                }
                guard size >= 4096 else {
                    throw refusal(path, "is a block device of \(size) bytes, under one 4 KiB page")
                }
            }
            guard try setDirect(path, fd, allowed: directAllowed) else {
                return FileBackingStore(name: path, fd: fd, cachedFD: fd, medium: medium, size: size)
            }
            let cachedFD = try reopenCached(path, fd)
            return FileBackingStore(name: path, fd: fd, cachedFD: cachedFD, medium: medium, size: size)
        } catch {
            _ = try? fd.close()
            throw error
        }
    }

    /// A second descriptor on the same file or device, without `O_DIRECT`, opened
    /// through `/proc/self/fd` so that it is the same inode whatever the path names
    /// now. Without `O_EXCL`: the store's own claim is held by the first descriptor.
    private static func reopenCached(_ path: String, _ fd: FileDescriptor) throws(ZramError) -> FileDescriptor {
        let descriptor = cplatform_open("/proc/self/fd/\(fd.rawValue)", O_RDWR | O_CLOEXEC, 0)
        guard descriptor >= 0 else { throw openFailure(path, Errno.lastError) }
        return FileDescriptor(rawValue: descriptor)
    }

    /// Back to blocking I/O, with `O_DIRECT` when the medium takes it (tmpfs before
    /// Linux 6.6 and some FUSE file systems answer `EINVAL`).
    private static func setDirect(_ path: String, _ fd: FileDescriptor, allowed: Bool) throws(ZramError) -> Bool {
        do throws(Errno) {
            let flags = try valueOrErrno { cplatform_fcntl(fd.rawValue, F_GETFL, 0) } & ~O_NONBLOCK
            if allowed && cplatform_fcntl(fd.rawValue, F_SETFL, flags | cplatform_o_direct) == 0 {
                return true
            }
            try valueOrErrno { cplatform_fcntl(fd.rawValue, F_SETFL, flags) }
            return false
        } catch {
            throw openFailure(path, error)
        }
    }

    /// An open that failed, in the kernel's terms where it has one: `EBUSY` for a
    /// device that is mounted or claimed, `ENOSPC`, `ENOMEM`; `EINVAL` otherwise, with
    /// the errno's name in the message.
    private static func openFailure(_ path: String, _ error: Errno) -> ZramError {
        let message = "\(path): cannot open as a backing device: \(error.symbolicName)"
        switch error {
        case .resourceBusy: return ZramError(.busy, "\(message) (mounted, or another device's backing device)")
        case .noSpace, .diskQuotaExceeded: return ZramError(.noSpace, message)
        case .noMemory: return ZramError(.outOfMemory, message)
        case .tooManySymbolicLinkLevels:
            return refusal(path, "is a symbolic link; only a link to a block device is followed")
        default: return ZramError(.invalidArgument, message)
        }
    }

    /// A backing file holds the pages of whoever swaps to the device: it must not be
    /// another user's (planted in a shared directory) nor writable by others, who could
    /// then read it or change what is read back.
    private static func checkPrivate(_ path: String, _ fd: FileDescriptor, _ status: stat) throws(ZramError) {
        guard status.st_uid == geteuid() else {
            throw ZramError(.invalidArgument, "\(path) is owned by uid \(status.st_uid), not by uid \(geteuid()) running znbd; refusing it as a backing file")
        }
        guard status.st_mode & (S_IWGRP | S_IWOTH) == 0 else {
            let mode = String(status.st_mode & 0o7777, radix: 8)
            throw ZramError(.invalidArgument, "\(path) is writable by group or others (mode \(mode)); chmod go-w it to use it as a backing file")
        }
        if status.st_mode & 0o077 != 0 && fchmod(fd.rawValue, 0o600) != 0 { throw openFailure(path, .lastError) }
    }

    private static func refusal(_ path: String, _ reason: String) -> ZramError {
        ZramError(.invalidArgument, "\(path) \(reason): a backing device is a block device or a regular file")
    }

    private static func fileTypeName(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: "a directory"
        case S_IFIFO: "a FIFO"
        case S_IFSOCK: "a socket"
        case S_IFCHR: "a character device"
        case S_IFLNK: "a symbolic link"
        case S_IFREG: "a regular file"
        case S_IFBLK: "a block device"
        default: "of an unknown file type"
        }
    }
}
