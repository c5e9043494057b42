import CPlatform
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Files of a runtime directory (state, pidfile, log): opened without following a
/// symlink, close-on-exec, created with mode 0600, and only when regular.
public enum PrivateFile {
    /// Opens `path` with `O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK` (a FIFO cannot block the
    /// open) and `options`; a file created is 0600, and an existing one is narrowed to 0600.
    ///
    /// - Throws: `ELOOP` for a symlink, `EINVAL` for anything but a regular file, `EACCES`
    ///   for a file another user owns (planted where we would write or trust it).
    public static func open(
        _ path: String, _ mode: FileDescriptor.AccessMode, options: FileDescriptor.OpenOptions = []
    ) throws(Errno) -> FileDescriptor {
        // Truncated only once the file passed the checks, never at open.
        let truncate = options.contains(.truncate)
        let flags = mode.rawValue | options.subtracting(.truncate).rawValue | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK
        let fd = FileDescriptor(rawValue: try valueOrErrno { cplatform_open(path, flags, 0o600) })
        do throws(Errno) {
            var status = stat()
            try valueOrErrno { fstat(fd.rawValue, &status) }
            guard status.st_mode & S_IFMT == S_IFREG else { throw Errno.invalidArgument }
            guard status.st_uid == geteuid() else { throw Errno.permissionDenied }
            if mode != .readOnly && status.st_mode & 0o077 != 0 {
                try valueOrErrno { fchmod(fd.rawValue, 0o600) }
            }
            if truncate { try valueOrErrno { ftruncate(fd.rawValue, 0) } }
            // Back to blocking I/O for the regular file.
            let statusFlags = try valueOrErrno { cplatform_fcntl(fd.rawValue, F_GETFL, 0) }
            try valueOrErrno { cplatform_fcntl(fd.rawValue, F_SETFL, statusFlags & ~O_NONBLOCK) }
        } catch {
            _ = try? fd.close()
            throw error
        }
        return fd
    }

    /// The whole file, or nil when it does not exist.
    public static func read(_ path: String) throws(Errno) -> [UInt8]? {
        let fd: FileDescriptor
        do {
            fd = try open(path, .readOnly)
        } catch .noSuchFileOrDirectory {
            return nil
        }
        defer { _ = try? fd.close() }
        var contents: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let count = try valueOrErrno {
                chunk.withUnsafeMutableBytes { Glibc.read(fd.rawValue, $0.baseAddress, $0.count) }
            }
            if count == 0 { return contents }
            contents += chunk[..<count]
        }
    }

    /// Replaces `path` with `bytes` atomically: written to a 0600 sibling created
    /// exclusively, flushed, then renamed over `path` (a symlink there is replaced,
    /// not followed).
    public static func writeAtomically(_ bytes: [UInt8], to path: String) throws(Errno) {
        let temporary = path + ".tmp"
        if unlink(temporary) != 0 && errno != ENOENT { throw .lastError }
        let fd = try open(temporary, .writeOnly, options: [.create, .exclusiveCreate])
        do {
            try writeAll(bytes, to: fd)
            try valueOrErrno { fsync(fd.rawValue) }
            try fd.close()
        } catch {
            _ = try? fd.close()
            unlink(temporary)
            throw error as? Errno ?? .ioError
        }
        do {
            try valueOrErrno { rename(temporary, path) }
        } catch {
            unlink(temporary)
            throw error
        }
    }

    /// Writes all of `bytes` to `fd`.
    public static func writeAll(_ bytes: [UInt8], to fd: FileDescriptor) throws(Errno) {
        var written = 0
        while written < bytes.count {
            written += try valueOrErrno {
                bytes.withUnsafeBytes { Glibc.write(fd.rawValue, $0.baseAddress.unsafelyUnwrapped + written, $0.count - written) }
            }
        }
    }
}
