import CFuse3

#if canImport(Glibc)
import Glibc
#endif

/// Creating, mounting and taking down the libfuse session.
extension FUSEExport {
    /// A session with `FileSystem`'s operations, mounted at `mountPoint` (made if missing;
    /// a dead FUSE mount left there by a killed server is detached first).
    /// - Returns: the session, and whether the mount point was made here (`stop` removes it then).
    static func mount(_ fileSystem: FileSystem, at mountPoint: String, maxRead: Int) throws(FUSEExportError) -> (OpaquePointer, Bool) {
        let created = try prepareMountPoint(mountPoint)
        // max_read bounds READ as max_write (set in init) bounds WRITE; default_permissions
        // lets the kernel apply the files' 0600 root ownership.
        let arguments = ["znbd", "-o", "max_read=\(maxRead),default_permissions,fsname=znbd,subtype=znbd"]
        var argv = arguments.map { strdup($0) }
        defer { argv.forEach { free($0) } }
        var operations = FileSystem.operations
        let session: OpaquePointer? = argv.withUnsafeMutableBufferPointer { pointers in
            var args = fuse_args(argc: Int32(pointers.count), argv: pointers.baseAddress, allocated: 0)
            defer { fuse_opt_free_args(&args) }
            // The session keeps this pointer; FUSEExport holds the file system longer than the session.
            let userdata = Unmanaged.passUnretained(fileSystem).toOpaque()
            return fuse_session_new(&args, &operations, MemoryLayout<fuse_lowlevel_ops>.size, userdata)
        }
        guard let session else {
            if created { rmdir(mountPoint) }
            throw .mountFailed("fuse_session_new failed (see stderr)")
        }
        guard fuse_session_mount(session, mountPoint) == 0 else {
            fuse_session_destroy(session)
            if created { rmdir(mountPoint) }
            throw .mountFailed("cannot mount FUSE at \(mountPoint) (see stderr)")
        }
        // Every worker reads and answers on its own clone of the session's descriptor.
        var io = FUSEWorker.customIO
        guard fuse_session_custom_io(session, &io, fuse_session_fd(session)) == 0 else {
            fuse_session_unmount(session)
            fuse_session_destroy(session)
            if created { rmdir(mountPoint) }
            throw .mountFailed("fuse_session_custom_io failed")
        }
        return (session, created)
    }

    /// Makes the directory if it is missing (true then) and detaches a dead FUSE mount left there.
    private static func prepareMountPoint(_ path: String) throws(FUSEExportError) -> Bool {
        var info = stat()
        guard stat(path, &info) != 0 else { return false }
        switch errno {
        case ENOTCONN:
            umount2(path, Int32(MNT_DETACH))  // a dead FUSE mount
            return false
        case ENOENT:
            guard mkdir(path, 0o755) == 0 else {
                if errno == EEXIST { return false }
                throw .mountFailed("cannot create \(path): \(String(cString: strerror(errno)))")
            }
            return true
        default: throw .mountFailed("cannot use \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// The connection's directory under /sys/fs/fuse/connections, from the mount's
    /// device number in /proc/self/mountinfo (stat would wait on the connection).
    var connectionDirectory: String? {
        guard let text = try? readSmallFile("/proc/self/mountinfo") else { return nil }
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > 4, unescapeMountField(String(fields[4])) == mountPoint else { continue }
            let device = fields[2].split(separator: ":")
            guard device.count == 2, device[0] == "0", let minor = UInt32(device[1]) else { return nil }
            return "/sys/fs/fuse/connections/\(minor)"
        }
        return nil
    }

    /// Aborts the connection through fusectl, when it is mounted, so blocked workers return.
    func abort(connection directory: String) {
        let fd = open(directory + "/abort", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = write(fd, "1", 1)
        close(fd)
    }
}

/// /proc/self/mountinfo escapes spaces and such as octal (`\040`).
func unescapeMountField(_ field: String) -> String {
    var bytes: [UInt8] = []
    var input = Array(field.utf8)[...]
    while let byte = input.popFirst() {
        if byte == UInt8(ascii: "\\"), input.count >= 3, let code = UInt8(String(decoding: input.prefix(3), as: UTF8.self), radix: 8) {
            bytes.append(code)
            input = input.dropFirst(3)
        } else {
            bytes.append(byte)
        }
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// A /proc file's text.
func readSmallFile(_ path: String) throws -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw FUSEExportError.unavailable("cannot open \(path)") }
    defer { close(fd) }
    var data: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count <= 0 { break }
        data += chunk[0..<count]
    }
    return String(decoding: data, as: UTF8.self)
}
