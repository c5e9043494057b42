import CPlatform
import SystemPackage

/// The block-device ioctls a backing store needs, on an open descriptor.
public enum BlockDevice {
    /// The device's size in bytes (`BLKGETSIZE64`).
    public static func size(_ fd: FileDescriptor) throws(Errno) -> UInt64 {
        var bytes: UInt64 = 0
        try valueOrErrno { withUnsafeMutablePointer(to: &bytes) { cplatform_block_device_size(fd.rawValue, $0) } }
        return bytes
    }

    /// The logical block size (`BLKSSZGET`): offsets, lengths and buffer addresses of
    /// `O_DIRECT` I/O must be multiples of it.
    public static func logicalBlockSize(_ fd: FileDescriptor) throws(Errno) -> Int {
        var bytes: Int32 = 0
        try valueOrErrno { cplatform_block_device_logical_block_size(fd.rawValue, &bytes) }
        return Int(bytes)
    }

    /// Tells the device that `length` bytes at `offset` are unused (`BLKDISCARD`).
    /// Devices without discard support answer `EOPNOTSUPP`.
    public static func discard(_ fd: FileDescriptor, at offset: UInt64, length: UInt64) throws(Errno) {
        try valueOrErrno { cplatform_block_device_discard(fd.rawValue, offset, length) }
    }
}

/// File-space calls on an open regular file.
public enum FileSpace {
    /// Frees the blocks of `length` bytes at `offset` (`fallocate` with
    /// `FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE`); the range then reads as zeros.
    public static func punchHole(_ fd: FileDescriptor, at offset: Int64, length: Int64) throws(Errno) {
        try valueOrErrno { cplatform_punch_hole(fd.rawValue, off_t(offset), off_t(length)) }
    }
}

extension Errno {
    /// The symbolic name (`ENOSPC`), or the number when the C library does not know it.
    public var symbolicName: String {
        if let name = cplatform_errno_name(rawValue) { return String(cString: name) }
        return "errno \(rawValue)"
    }
}
