#if canImport(Glibc)
import Glibc
#endif
import Platform

/// An initialised device: its page table, allocator pool, compression
/// streams and counters. Created when disksize is set, dropped on reset.
///
/// Page operations here mirror zram_drv.c: the table knows nothing about how
/// memory is carved (`ZsPool`) or how pages are compressed (`CompressorPool`).
final class ZramStore: Sendable {
    let diskSize: UInt64
    let table: PageTable
    let compressors: CompressorPool
    /// The recompression algorithms by priority (1...3), as `recomp_algorithm` set them.
    let recompressors: RecompressorPools
    /// Stamps each page's access time (for `idle` with an age).
    let clock: AccessClock
    let encoder: PageEncoder
    var pool: ZsPool { encoder.pool }
    var counters: DeviceCounters { encoder.counters }
    /// Pages accepted but not yet compressed; nil when the queue is off.
    let queue: CompressionQueue?
    private let compressor: PosixThread?
    /// Where writeback puts pages; nil without a backing_dev.
    let backing: BackingTier?
    /// Writes pages back when a write meets mem_limit (writeback_auto); nil without a backing_dev.
    let relief: MemoryRelief?
    /// Threads that serve part of a large read; nil with one CPU or one stream.
    let helpers: RequestHelpers?
    /// Keeps the pool's reserve, so writes and frees make no memory system call.
    private let maintainer: ReserveMaintainer

    /// A write this long or shorter whose caller has more requests waiting is compressed
    /// on the caller's thread, not queued. Its reply leaves with the batch's anyway, and
    /// handing single pages to the compressor costs a copy, cache transfers and, between
    /// batches, polling or a wake-up. On a host whose cores are all busy (the client on
    /// one, the connection on the other) that polling took the client's CPU: 4 KiB writes
    /// at queue depth 32 on 2 cores went from 526 to 628 MB/s (CHANGELOG, 2026-12-02).
    /// A longer write still fills the queue, so the compressor works on it in parallel.
    static let backloggedInlineLimit = 4 * pageSize

    /// - Parameters:
    ///   - queuePages: compression queue slots (a power of two; 0 compresses every write inline).
    ///   - workerStart: runs first on the compressor, reserve and request-helper threads
    ///     (e.g. to mark them I/O flushers).
    ///   - helperThreads: threads serving part of a large read beside its caller; by default
    ///     ``defaultHelperThreads(streams:)``.
    ///   - refusals: stores the compressor fails as if out of memory (tests only).
    ///   - recompression: the parameters of priorities 1, 2 and 3 (nil where none is set).
    ///   - clock: the access-time clock (a manual one in tests).
    ///   - backing: the backing store writeback uses, if the device has one.
    ///   - relief: what makes room when a write reaches mem_limit (writeback_auto, tiering_enable).
    init(
        diskSize: UInt64, compression: CompressionParameters, streams: Int, counters: DeviceCounters,
        queuePages: Int = 0, workerStart: (@Sendable () -> Void)? = nil, helperThreads: Int? = nil,
        refusals: MemoryRefusals? = nil, recompression: [CompressionParameters?] = [], clock: AccessClock = AccessClock(),
        backing: BackingTier? = nil, relief: MemoryRelief? = nil
    ) throws(ZramError) {
        let compressors = try CompressorPool(parameters: compression, streams: streams)
        let recompressors = try RecompressorPools(parameters: recompression, streams: streams)
        let table = try PageTable(pageCount: Int(diskSize / UInt64(pageSize)))
        let pool = ZsPool(reserve: .standard)
        let encoder = PageEncoder(pool: pool, counters: counters)
        let queue = queuePages > 0 ? try CompressionQueue(capacity: queuePages) : nil
        do {
            maintainer = try ReserveMaintainer(pool: pool, start: workerStart)
        } catch {
            throw ZramError(.outOfMemory, "cannot start the reserve thread: \(error)")
        }
        self.diskSize = diskSize
        self.compressors = compressors
        self.recompressors = recompressors
        self.clock = clock
        self.table = table
        self.encoder = encoder
        self.queue = queue
        self.backing = backing
        self.relief = relief
        // The compressor holds the parts it needs, not the store, so dropping the store stops it.
        // It has a stream of its own, so it never contends with writers for one.
        let workerStreams = try queue.map { _ throws(ZramError) in try CompressorPool(parameters: compression, streams: 1) }
        let helperCount = helperThreads ?? Self.defaultHelperThreads(streams: streams)
        helpers = helperCount > 0 ? try RequestHelpers(count: helperCount, threadStart: workerStart) : nil
        guard let queue, let workerStreams else {
            compressor = nil
            return
        }
        let worker = CompressorWorker(table: table, encoder: encoder, compressors: workerStreams, queue: queue, refusals: refusals)
        do {
            compressor = try PosixThread.spawn(name: CompressorWorker.threadName) {
                workerStart?()
                worker.run()
            }
        } catch {
            helpers?.stop()
            throw ZramError(.outOfMemory, "cannot start the compressor thread: \(error)")
        }
    }

    deinit { shutdown() }

    /// Compresses what is queued and stops the compressor, reserve and request-helper threads.
    /// Call when no request is in flight.
    func shutdown() {
        helpers?.stop()
        queue?.stop()
        compressor?.join()
        maintainer.stop()
    }

    /// Request helpers a store gets: one per CPU beyond the caller's, and no more than the
    /// streams beyond the caller's (see `RequestHelpers` for where they pay).
    static func defaultHelperThreads(streams: Int) -> Int {
        max(0, min(streams - 1, sysconf(Int32(_SC_NPROCESSORS_ONLN)) - 1))
    }

    /// Waits until every page written so far is compressed, so counters are exact.
    func drain() { queue?.drain() }

    /// mem_used_total: the allocator's pages plus the queue slots holding pages.
    var memoryUsed: Int { pool.memoryUsed + counters.queuedPages.load(ordering: .relaxed) * pageSize }
}

// MARK: - Encoding one page

extension ZramStore {
    typealias EncodedPage = PageEncoder.EncodedPage

    /// Encodes a page against the current mem_limit (see `PageEncoder`).
    @inline(__always)
    func encode(_ page: UnsafeRawBufferPointer, stream: CompressionStream) throws(ZramError) -> EncodedPage {
        try encoder.encode(page, stream: stream, limit: counters.memLimit.load(ordering: .relaxed))
    }

    /// The error for reading a page the compressor lost (counted as a failed read).
    @inline(never)
    func lostPage() -> ZramError {
        counters.failedReads.wrappingAdd(1, ordering: .relaxed)
        return ZramError(.ioError, "the page was lost: the system refused memory to compress it")
    }

    /// Releases what `state` and `payload` held. Call after the slot no longer points at it.
    @inline(__always)
    func release(_ state: PageState, payload: UInt64) {
        if state.hasObject {
            pool.free(ObjectHandle(rawValue: payload))
        } else if state.isWrittenBack {
            releaseWrittenBack(state, payload: payload)
        }
        counters.forget(state)
    }

    /// Decodes a stored object (pinned by the caller) into a whole page.
    /// - Throws: `EIO` (counted in failed_reads) if it does not decompress.
    @inline(__always)
    func decodeObject(
        _ object: UnsafeRawBufferPointer, state: PageState, into destination: UnsafeMutableRawBufferPointer,
        stream: CompressionStream? = nil
    ) throws(ZramError) {
        let ok: Bool
        if state.isHuge {
            destination.baseAddress!.copyMemory(from: object.baseAddress!, byteCount: pageSize)
            ok = true
        } else if state.rawValue & PageState.priorityMask != 0 {
            ok = recompressors.decompress(object, priority: state.priority, into: destination)
        } else if let stream {
            ok = stream.decompress(object, into: destination)
        } else {
            ok = compressors.withStream { $0.decompress(object, into: destination) }
        }
        guard ok else {
            counters.failedReads.wrappingAdd(1, ordering: .relaxed)
            throw ZramError(.ioError, "stored page failed to decompress")
        }
    }

    /// Decodes a stored page into `destination` (4096 bytes). The slot must be locked.
    /// - Parameter stream: the caller's stream; without one, a stream is taken only
    ///   for as long as a compressed object is decompressed.
    @inline(__always)
    func decode(
        _ state: PageState, payload: UInt64, into destination: UnsafeMutableRawBufferPointer,
        stream: CompressionStream? = nil
    ) throws(ZramError) {
        if state.hasObject {
            let handle = ObjectHandle(rawValue: payload)
            try pool.withObject(handle, size: state.objectSize) { object throws(ZramError) in
                try decodeObject(object, state: state, into: destination, stream: stream)
            }
        } else if state.isWrittenBack {
            try decodeWrittenBack(state, payload: payload, into: destination, stream: stream)
        } else if state.isQueued, let queue {
            destination.baseAddress!.copyMemory(from: queue.buffer(Int(payload)), byteCount: pageSize)
        } else if state.isLost {
            throw lostPage()
        } else {
            SameFilledPage.fill(destination, with: state.isSame ? payload : 0, phase: 0)
        }
    }
}

// MARK: - Page operations
//
// One slot lock at a time. A compression stream is taken only to compress or
// decompress, and only after the page's lock (or with no page lock held at all):
// a thread holding a stream never waits for a page lock, so streams and page
// locks cannot deadlock.

extension ZramStore {
    /// Stores a full page: same-filled pages at once, others through the compression
    /// queue when `mayQueue`, it has room and no mem_limit is set (a queued page must
    /// never fail later), else compressed inline.
    func writePage(_ index: Int, from page: UnsafeRawBufferPointer, mayQueue: Bool = true) throws(ZramError) {
        let entry = try writableSlot(index)
        if let word = SameFilledPage.fillWord(of: page) {
            install(EncodedPage(state: .same(word), payload: word), in: entry)
            return
        }
        if mayQueue, let queue, counters.memLimit.load(ordering: .relaxed) == 0 {
            if let sequence = queue.reserve() {
                let slot = queue.slot(ofSequence: sequence)
                queue.buffer(slot).copyMemory(from: page.baseAddress!, byteCount: pageSize)
                // The object the page held is left for the compressor to free.
                let old = exchange(EncodedPage(state: .queued, payload: UInt64(slot)), in: entry)
                queue.publish(sequence, .init(page: index, replacedObject: old.state.hasObject ? old.payload : 0))
                if old.state.isWrittenBack { releaseWrittenBack(old.state, payload: old.payload) }
                counters.notePeak(memoryUsed)
                return
            }
        }
        let encoded: EncodedPage
        do {
            encoded = try compressors.withStream { stream throws(ZramError) in try encode(page, stream: stream) }
        } catch {
            do throws(ZramError) {
                encoded = try retryMakingRoom(after: error) { () throws(ZramError) in
                    try compressors.withStream { stream throws(ZramError) in try encode(page, stream: stream) }
                }
            } catch {
                counters.failedWrites.wrappingAdd(1, ordering: .relaxed)
                throw error
            }
        }
        install(encoded, in: entry)
    }

    /// The slot of page `index`, allocating its part of the table on first use.
    /// - Throws: `ENOMEM` (counted as a failed write) if the system refuses memory.
    @inline(__always)
    func writableSlot(_ index: Int) throws(ZramError) -> UnsafeMutablePointer<PageSlot> {
        guard let slot = table.slot(index) else {
            counters.failedWrites.wrappingAdd(1, ordering: .relaxed)
            throw ZramError(.outOfMemory, "the system refused memory for the page table")
        }
        return slot
    }

    /// Overwrites `bytes` at `offset` inside page `index`, keeping the rest of the page.
    /// Holds a stream for the read-modify-write: its work page holds the page meanwhile.
    func writePartialPage(_ index: Int, _ bytes: UnsafeRawBufferPointer, at offset: Int) throws(ZramError) {
        let slot = try writableSlot(index)
        do {
            try replacePart(of: slot, with: bytes, at: offset)
        } catch {
            do throws(ZramError) {
                try retryMakingRoom(after: error) { () throws(ZramError) in try replacePart(of: slot, with: bytes, at: offset) }
            } catch {
                counters.failedWrites.wrappingAdd(1, ordering: .relaxed)
                throw error
            }
        }
    }

    /// The read-modify-write of a partial page, under its lock; on failure the page is unchanged and unlocked.
    private func replacePart(
        of slot: UnsafeMutablePointer<PageSlot>, with bytes: UnsafeRawBufferPointer, at offset: Int
    ) throws(ZramError) {
        let old = slot.lock()
        let oldPayload = slot.pointee.payload
        do {
            let encoded = try compressors.withStream { stream throws(ZramError) in
                let page = stream.workPage
                try decode(old, payload: oldPayload, into: page, stream: stream)
                (page.baseAddress! + offset).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
                return try encode(UnsafeRawBufferPointer(page), stream: stream)
            }
            slot.pointee.payload = encoded.payload
            slot.unlock(setting: encoded.state.accessed(at: clock.now))
            counters.record(encoded.state)
            release(old, payload: oldPayload)
        } catch {
            slot.unlock(setting: old)
            throw error
        }
    }

    /// Puts an encoded page into the table and frees what the slot held before.
    @inline(__always)
    func install(_ encoded: EncodedPage, in slot: UnsafeMutablePointer<PageSlot>) {
        let old = exchange(encoded, in: slot)
        if old.state.hasObject {
            pool.free(ObjectHandle(rawValue: old.payload))
        } else if old.state.isWrittenBack {
            releaseWrittenBack(old.state, payload: old.payload)
        }
    }

    /// Puts an encoded page into the table and counts the change; the caller frees
    /// the object the slot held, if any (`hasObject`: `payload` is its handle, never 0).
    @inline(__always)
    private func exchange(
        _ encoded: EncodedPage, in slot: UnsafeMutablePointer<PageSlot>
    ) -> (state: PageState, payload: UInt64) {
        let old = slot.lock()
        let oldPayload = slot.pointee.payload
        slot.pointee.payload = encoded.payload
        slot.unlock(setting: encoded.state.accessed(at: clock.now))
        counters.record(encoded.state)
        counters.forget(old)
        return (old, oldPayload)
    }

    /// Reads `destination.count` bytes from `offset` inside page `index`.
    func readPage(_ index: Int, into destination: UnsafeMutableRawBufferPointer, at offset: Int) throws(ZramError) {
        guard let slot = table.existingSlot(index) else {
            SameFilledPage.fill(destination, with: 0, phase: 0)
            return
        }
        let state = slot.lock()
        defer { slot.unlock(setting: state.accessed(at: clock.now)) }
        try readLocked(state, payload: slot.pointee.payload, into: destination, at: offset)
    }

    /// Reads a page whose lock the caller holds (`state` and `payload` are what it guards).
    @inline(__always)
    func readLocked(
        _ state: PageState, payload: UInt64, into destination: UnsafeMutableRawBufferPointer, at offset: Int
    ) throws(ZramError) {
        if state.isLost {
            throw lostPage()
        } else if state.isWrittenBack {
            try readWrittenBack(state, payload: payload, into: destination, at: offset)
        } else if state.isQueued, let queue {
            destination.baseAddress!.copyMemory(from: queue.buffer(Int(payload)) + offset, byteCount: destination.count)
        } else if state.isSame || !state.hasObject {
            SameFilledPage.fill(destination, with: state.isSame ? payload : 0, phase: offset)
        } else if destination.count == pageSize {
            try decode(state, payload: payload, into: destination)
        } else if state.isHuge {
            pool.withObject(ObjectHandle(rawValue: payload), size: pageSize) { object in
                destination.baseAddress!.copyMemory(from: object.baseAddress! + offset, byteCount: destination.count)
            }
        } else {
            try compressors.withStream { stream throws(ZramError) in
                try decode(state, payload: payload, into: stream.workPage, stream: stream)
                destination.baseAddress!.copyMemory(
                    from: stream.workPage.baseAddress! + offset, byteCount: destination.count)
            }
        }
    }

    /// Forgets page `index`, as a discard does.
    @inline(__always)
    func freePage(_ index: Int) {
        guard let slot = table.existingSlot(index) else { return }
        let old = slot.lock()
        let oldPayload = slot.pointee.payload
        slot.pointee.payload = 0
        slot.unlock(setting: .empty)
        release(old, payload: oldPayload)
    }

    /// Marks page `index` idle, as zram's `idle` does: with no cutoff (`idle all`) if it
    /// holds data; with one, if its last access came before `cutoff` (seconds since
    /// init), and clears the mark otherwise. Same-filled and written-back pages are
    /// never marked: nothing post-processes them.
    func markIdle(_ index: Int, accessedBefore cutoff: UInt64? = nil) {
        guard let slot = table.existingSlot(index) else { return }
        let state = slot.lock()
        guard state.isStored, !state.isSame, !state.isWrittenBack else {
            slot.unlock(setting: state)
            return
        }
        let idle = cutoff.map { state.accessTime < $0 } ?? true
        slot.unlock(setting: PageState(rawValue: idle ? state.rawValue | PageState.idleBit : state.rawValue & ~PageState.idleBit))
    }
}
