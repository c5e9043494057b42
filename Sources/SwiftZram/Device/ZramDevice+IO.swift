/// Byte-granular I/O at any offset and length. Partial pages are
/// read-modify-written; requests may span many pages.
extension ZramDevice {
    /// Reads `buffer.count` bytes at `offset`. Unwritten bytes read as zeros.
    /// - Throws: `ENXIO` before initialisation, `EINVAL` past the end, `EIO` for a page that fails to decompress.
    /// - Parameter splittable: a large read may be shared with the request helpers. Callers that
    ///   serve one client from several threads at once pass false (see ``RequestHelpers``).
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64, splittable: Bool = true) throws(ZramError) {
        try withStore(checking: offset, length: UInt64(buffer.count)) { store throws(ZramError) in
            try store.read(into: buffer, at: offset, splittable: splittable)
        }
    }

    /// Writes `data` at `offset`.
    /// - Throws: `ENXIO` before initialisation, `EINVAL` past the end,
    ///   `memoryLimitReached` when mem_limit stops the store (earlier pages of the request stay written),
    ///   `ENOMEM` if the system refuses memory.
    /// - Parameter backlogged: the caller holds more requests to serve after this one
    ///   (an NBD connection with a batch in its buffer). A small write is then compressed
    ///   on the caller's thread rather than queued; see ``ZramStore/backloggedInlineLimit``.
    public func write(_ data: UnsafeRawBufferPointer, at offset: UInt64, backlogged: Bool = false) throws(ZramError) {
        try withStore(checking: offset, length: UInt64(data.count)) { store throws(ZramError) in
            try store.write(data, at: offset, backlogged: backlogged)
        }
    }

    /// Discards the range: whole pages are freed (and counted in notify_free), partial edges are zeroed.
    public func discard(offset: UInt64, length: UInt64) throws(ZramError) {
        try withStore(checking: offset, length: length) { store throws(ZramError) in
            try store.zeroRange(offset: offset, length: length, keepAllocated: false)
        }
    }

    /// Makes the range read as zeros. With `deallocate` (the default) whole pages are freed as by
    /// discard; without it they are kept as same-filled zero pages, which cost no allocator memory.
    public func writeZeroes(offset: UInt64, length: UInt64, deallocate: Bool = true) throws(ZramError) {
        try withStore(checking: offset, length: length) { store throws(ZramError) in
            try store.zeroRange(offset: offset, length: length, keepAllocated: !deallocate)
        }
    }

    /// Reports how the range is stored as runs of equal allocation, in order.
    /// `body` receives each run's length in bytes and returns false to stop early.
    public func allocationStatus(
        offset: UInt64, length: UInt64, _ body: (UInt64, PageAllocation) -> Bool
    ) throws(ZramError) {
        try withStore(checking: offset, length: length) { store throws(ZramError) in
            store.blockStatus(offset: offset, length: length, body)
        }
    }

    /// Runs `body` with the initialised store after checking the range, holding the lifecycle lock shared.
    @inline(__always)
    private func withStore<R>(
        checking offset: UInt64, length: UInt64, _ body: (ZramStore) throws(ZramError) -> R
    ) throws(ZramError) -> R {
        try withInitializedStore { store throws(ZramError) in
            let (end, overflow) = offset.addingReportingOverflow(length)
            guard !overflow, end <= store.diskSize else {
                store.counters.invalidIO.wrappingAdd(1, ordering: .relaxed)
                throw ZramError(.outOfRange, "\(length) bytes at \(offset) reach past the end of \(name)")
            }
            return try body(store)
        }
    }
}
