import CFuse3
import NBD

#if canImport(Glibc)
import Glibc
#endif

/// READ, WRITE, FALLOCATE, FLUSH and FSYNC on a device file. The hot path allocates
/// nothing: READ decompresses into the worker's buffer, WRITE stores from libfuse's
/// request buffer.
extension FileSystem {
    /// fallocate(2) modes (linux/falloc.h, not imported).
    static let keepSize: Int32 = 0x01
    static let punchHole: Int32 = 0x02
    static let zeroRange: Int32 = 0x10

    /// Reads up to `size` bytes; a read at or past the end returns what lies before it (EOF).
    @inline(__always)
    func read(_ request: fuse_req_t, size: Int, offset: off_t, file: OpenFile) {
        guard let worker = FUSEWorker.current else {
            fuse_reply_err(request, EIO)
            return
        }
        let (error, count) = read(file: file, offset: offset, size: size, into: worker.readBuffer)
        if error != 0 {
            fuse_reply_err(request, error)
        } else {
            fuse_reply_buf(request, worker.readBuffer.baseAddress, count)
        }
    }

    /// READ's work, for both transports: an errno, or 0 and the bytes read into `buffer`.
    @inline(__always)
    func read(file: OpenFile, offset: off_t, size: Int, into buffer: UnsafeMutableRawBufferPointer) -> (Int32, Int) {
        guard offset >= 0 else { return (EINVAL, 0) }
        let start = UInt64(offset), end = file.export.size
        guard start < end else { return (0, 0) }
        let count = Int(min(UInt64(min(size, buffer.count)), end - start))
        do {
            // The kernel hands concurrent requests to different queues (or /dev/fuse threads),
            // which keeps the cores busy already: splitting one read only adds hand-offs.
            try file.export.read(
                into: UnsafeMutableRawBufferPointer(start: buffer.baseAddress, count: count), at: start, splittable: false)
        } catch {
            return (Int32(bitPattern: error.code), 0)
        }
        return (0, count)
    }

    /// Writes what fits before the end; a write starting at or past the end is ENOSPC.
    @inline(__always)
    func write(_ request: fuse_req_t, data: UnsafePointer<CChar>?, size: Int, offset: off_t, file: OpenFile) {
        let (error, count) = write(file: file, offset: offset, data: UnsafeRawBufferPointer(start: data, count: size))
        if error != 0 {
            fuse_reply_err(request, error)
        } else {
            fuse_reply_write(request, count)
        }
    }

    /// WRITE's work, for both transports: an errno, or 0 and the bytes written.
    @inline(__always)
    func write(file: OpenFile, offset: off_t, data: UnsafeRawBufferPointer) -> (Int32, Int) {
        guard offset >= 0 else { return (EINVAL, 0) }
        guard !data.isEmpty else { return (0, 0) }
        let start = UInt64(offset), end = file.export.size
        guard start < end else { return (ENOSPC, 0) }
        let count = Int(min(UInt64(data.count), end - start))
        do {
            try file.export.write(UnsafeRawBufferPointer(start: data.baseAddress, count: count), at: start)
        } catch {
            return (Int32(bitPattern: error.code), 0)
        }
        return (0, count)
    }

    /// PUNCH_HOLE|KEEP_SIZE discards (the loop driver's DISCARD); ZERO_RANGE writes zeroes
    /// that stay allocated (its WRITE_ZEROES with NOUNMAP); every other mode is ENOTSUP.
    /// The range is clipped to the file: the size never changes.
    func fallocate(_ request: fuse_req_t, mode: Int32, offset: off_t, length: off_t, file: OpenFile) {
        guard offset >= 0, length > 0 else {
            fuse_reply_err(request, EINVAL)
            return
        }
        let isPunch = mode == Self.punchHole | Self.keepSize
        let isZero = mode == Self.zeroRange || mode == Self.zeroRange | Self.keepSize
        guard isPunch || isZero else {
            fuse_reply_err(request, EOPNOTSUPP)
            return
        }
        let start = UInt64(offset), end = file.export.size
        let (requestedEnd, overflow) = start.addingReportingOverflow(UInt64(length))
        let clippedEnd = overflow ? end : min(requestedEnd, end)
        guard start < clippedEnd else {
            fuse_reply_err(request, 0)
            return
        }
        do {
            if isPunch {
                try file.export.trim(offset: start, length: clippedEnd - start)
            } else {
                try file.export.writeZeroes(offset: start, length: clippedEnd - start, mayTrim: false)
            }
        } catch {
            fuse_reply_err(request, Int32(bitPattern: error.code))
            return
        }
        fuse_reply_err(request, 0)
    }

    /// FSYNC: whatever the export calls flushing (nothing, for memory). FLUSH (close) is a no-op.
    func fsync(_ request: fuse_req_t, file: OpenFile?) {
        do { try file?.export.flush() } catch {
            fuse_reply_err(request, Int32(bitPattern: error.code))
            return
        }
        fuse_reply_err(request, 0)
    }
}
