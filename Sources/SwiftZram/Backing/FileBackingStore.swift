import Platform
import Synchronization
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A backing store on a block device or a regular file (see `open(_:)`).
///
/// I/O goes around the page cache (`O_DIRECT`) whenever the medium allows it:
/// writeback exists to take cold pages out of RAM, and a cached copy of each written
/// page would keep them there until the kernel reclaims the cache. Direct I/O needs
/// the 4 KiB alignment that ``BackingStore`` documents. A request without it (a
/// compressed object shorter than a block, a buffer that is not page-aligned) goes
/// through a second, cached descriptor on the same file. The kernel keeps the two
/// coherent: a direct read first writes back cached dirty pages of its range, and a
/// direct write drops them. A medium that refuses `O_DIRECT` (some file systems) is
/// used through the page cache only.
public final class FileBackingStore: BackingStore {
    /// What is behind the descriptor.
    public enum Medium: Sendable {
        case blockDevice
        case regularFile
    }

    public let name: String
    public let medium: Medium
    /// True when I/O bypasses the page cache (`O_DIRECT`).
    public let isDirect: Bool

    private let fd: FileDescriptor
    /// The cached descriptor for requests direct I/O cannot take (the same as `fd`
    /// when the store is not direct).
    private let cachedFD: FileDescriptor
    private let size: Atomic<UInt64>
    private let closed = Atomic<Bool>(false)

    /// The alignment direct I/O needs (every medium we use needs at most 4 KiB).
    static let directAlignment = 4096

    init(name: String, fd: FileDescriptor, cachedFD: FileDescriptor, medium: Medium, size: UInt64) {
        self.name = name
        self.fd = fd
        self.cachedFD = cachedFD
        self.medium = medium
        self.isDirect = fd != cachedFD
        self.size = Atomic(size)
    }

    deinit { close() }

    public var capacity: UInt64 { size.load(ordering: .acquiring) }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(ZramError) {
        guard let base = buffer.baseAddress else { return }
        try transfer("read", base, count: buffer.count, at: offset, endOfMedium: "short read: end of medium") {
            pread($0, base + $1, buffer.count - $1, $2)
        }
    }

    public func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws(ZramError) {
        guard let base = buffer.baseAddress else { return }
        try transfer("write", base, count: buffer.count, at: offset, endOfMedium: "short write") {
            pwrite($0, base + $1, buffer.count - $1, $2)
        }
    }

    /// Checks the request, then calls `call(descriptor, bytes done, file offset)` until
    /// `count` bytes moved, retrying EINTR. A call that moves nothing ends with EIO.
    private func transfer(
        _ what: StaticString, _ base: UnsafeRawPointer, count: Int, at offset: UInt64, endOfMedium: StaticString,
        _ call: (Int32, Int, off_t) -> Int
    ) throws(ZramError) {
        try checkRequest(count: count, offset: offset, what)
        let descriptor = descriptor(for: base, count: count, offset: offset)
        var done = 0
        while done < count {
            let result = call(descriptor, done, off_t(offset) + off_t(done))
            if result > 0 {
                done += result
            } else if result == 0 {
                throw ZramError(.ioError, "\(name): \(endOfMedium) at byte \(offset + UInt64(done))")
            } else if errno != EINTR {
                throw failure("\(what)", Errno.lastError, at: offset + UInt64(done))
            }
        }
    }

    /// Punches a hole in a file or sends `BLKDISCARD` to a device. Failures (a file
    /// system or device without discard support) are ignored: the space stays taken.
    public func discard(at offset: UInt64, length: UInt64) {
        guard length > 0, !closed.load(ordering: .relaxed),
            offset < capacity, length <= capacity - offset
        else { return }
        switch medium {
        case .blockDevice:
            try? BlockDevice.discard(fd, at: offset, length: length)
        case .regularFile:
            try? FileSpace.punchHole(fd, at: Int64(offset), length: Int64(length))
        }
    }

    /// A file is emptied and resized to `bytes`, sparse, so nothing of an earlier use
    /// takes space. A block device keeps its size, whatever `bytes` is: the kernel's
    /// `backing_dev` accepts a device smaller than `disksize` and writeback then stops
    /// with `ENOSPC` when the device is full (only a device under one page is refused,
    /// at open).
    public func prepare(capacity bytes: UInt64) throws(ZramError) {
        guard medium == .regularFile else { return }
        guard bytes <= UInt64(Int64.max) else {
            throw ZramError(.invalidArgument, "\(name): \(bytes) bytes is past the largest file size")
        }
        do throws(Errno) {
            try valueOrErrno { ftruncate(fd.rawValue, 0) }
            try valueOrErrno { ftruncate(fd.rawValue, off_t(bytes)) }
        } catch {
            throw failure("size to \(bytes) bytes", error, at: nil)
        }
        size.store(bytes, ordering: .releasing)
    }

    public func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        if cachedFD != fd { _ = try? cachedFD.close() }
        _ = try? fd.close()
    }

    /// The direct descriptor for a request aligned to 4 KiB in address, length and
    /// offset; the cached one otherwise.
    @inline(__always)
    private func descriptor(for base: UnsafeRawPointer, count: Int, offset: UInt64) -> Int32 {
        let alignment = UInt(Self.directAlignment)
        let aligned = (UInt(bitPattern: base) | UInt(count) | UInt(truncatingIfNeeded: offset)) % alignment == 0
        return aligned ? fd.rawValue : cachedFD.rawValue
    }

    /// Refuses a request that is past the capacity, or comes after `close()` (a
    /// reused descriptor number would take the bytes).
    @inline(__always)
    private func checkRequest(count: Int, offset: UInt64, _ operation: StaticString) throws(ZramError) {
        let end = offset.addingReportingOverflow(UInt64(count))
        if end.overflow || end.partialValue > capacity {
            throw ZramError(
                .ioError, "\(name): \(operation) of \(count) bytes at \(offset) is past its \(capacity) bytes")
        }
        if closed.load(ordering: .relaxed) {
            throw ZramError(.ioError, "\(name): \(operation) after close")
        }
    }

    /// A failed system call as the device reports it: ENOSPC (and EFBIG, EDQUOT) as
    /// `noSpace`, anything else as `ioError`, with the path and the errno's name.
    private func failure(_ operation: String, _ error: Errno, at offset: UInt64?) -> ZramError {
        let place = offset.map { " at byte \($0)" } ?? ""
        let message = "\(name): \(operation)\(place): \(error.symbolicName)"
        switch error {
        case .noSpace, .fileTooLarge, .diskQuotaExceeded: return ZramError(.noSpace, message)
        default: return ZramError(.ioError, message)
        }
    }
}
