/// An initialised device: its page table, allocator pool, compression
/// streams and counters. Created when disksize is set, dropped on reset.
///
/// Page operations here mirror zram_drv.c: the table knows nothing about how
/// memory is carved (`ZsPool`) or how pages are compressed (`CompressorPool`).
final class ZramStore: Sendable {
    let diskSize: UInt64
    let table: PageTable
    let pool: ZsPool
    let compressors: CompressorPool
    let counters: DeviceCounters

    init(diskSize: UInt64, compression: CompressionParameters, streams: Int, counters: DeviceCounters) throws(ZramError) {
        self.diskSize = diskSize
        self.compressors = try CompressorPool(parameters: compression, streams: streams)
        self.table = PageTable(pageCount: Int(diskSize / UInt64(pageSize)))
        self.pool = ZsPool()
        self.counters = counters
    }

    /// mem_used_total.
    var memoryUsed: Int { pool.memoryUsed }
}

// MARK: - Encoding one page

extension ZramStore {
    /// How a page is stored: its table state and the payload word that goes with it.
    struct EncodedPage {
        var state: PageState
        var payload: UInt64
    }

    /// Turns a full page into its stored form: a fill word, or a compressed or raw object.
    /// Throws, having changed nothing, if the object's pages would take mem_used_total past mem_limit.
    @inline(__always)
    func encode(_ page: UnsafeRawBufferPointer, stream: CompressionStream) throws(ZramError) -> EncodedPage {
        if let word = SameFilledPage.fillWord(of: page) {
            return EncodedPage(state: .same(word), payload: word)
        }
        let compressed = stream.compress(page)
        let huge = compressed.count > ZsPool.hugeThreshold
        let object = huge ? page : compressed
        let limit = counters.memLimit.load(ordering: .relaxed)
        let handle: ObjectHandle
        switch pool.store(object, memoryLimit: limit) {
        case .stored(let stored): handle = stored
        case .overLimit: throw ZramError(.memoryLimitReached, "mem_limit of \(limit) bytes reached")
        case .outOfMemory: throw ZramError(.outOfMemory, "the system refused memory for a page")
        }
        let used = pool.memoryUsed
        counters.notePeak(used)
        return EncodedPage(state: .object(size: object.count, huge: huge), payload: handle.rawValue)
    }

    /// Releases what `state` and `payload` held. Call after the slot no longer points at it.
    @inline(__always)
    func release(_ state: PageState, payload: UInt64) {
        if state.hasObject { pool.free(ObjectHandle(rawValue: payload)) }
        counters.forget(state)
    }

    /// Decodes a stored page into `destination` (4096 bytes). The slot must be locked.
    @inline(__always)
    func decode(
        _ state: PageState, payload: UInt64, into destination: UnsafeMutableRawBufferPointer,
        stream: CompressionStream
    ) throws(ZramError) {
        if state.hasObject {
            let handle = ObjectHandle(rawValue: payload)
            let ok = pool.withObject(handle, size: state.objectSize) { object in
                if state.isHuge {
                    destination.baseAddress!.copyMemory(from: object.baseAddress!, byteCount: pageSize)
                    return true
                }
                return stream.decompress(object, into: destination)
            }
            guard ok else {
                counters.failedReads.add(1, ordering: .relaxed)
                throw ZramError(.ioError, "stored page failed to decompress")
            }
        } else {
            SameFilledPage.fill(destination, with: state.isSame ? payload : 0, phase: 0)
        }
    }
}

// MARK: - Page operations (one slot lock at a time; callers hold a stream first)

extension ZramStore {
    /// Stores a full page.
    func writePage(_ index: Int, from page: UnsafeRawBufferPointer, stream: CompressionStream) throws(ZramError) {
        let encoded: EncodedPage
        do {
            encoded = try encode(page, stream: stream)
        } catch {
            counters.failedWrites.add(1, ordering: .relaxed)
            throw error
        }
        install(encoded, at: index)
    }

    /// Overwrites `bytes` at `offset` inside page `index`, keeping the rest of the page.
    func writePartialPage(
        _ index: Int, _ bytes: UnsafeRawBufferPointer, at offset: Int, stream: CompressionStream
    ) throws(ZramError) {
        let slot = table.slot(index)
        let old = slot.lock()
        let oldPayload = slot.pointee.payload
        let page = stream.workPage
        do {
            try decode(old, payload: oldPayload, into: page, stream: stream)
            (page.baseAddress! + offset).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
            let encoded = try encode(UnsafeRawBufferPointer(page), stream: stream)
            slot.pointee.payload = encoded.payload
            slot.unlock(setting: encoded.state)
            counters.record(encoded.state)
            release(old, payload: oldPayload)
        } catch {
            slot.unlock(setting: old)
            counters.failedWrites.add(1, ordering: .relaxed)
            throw error
        }
    }

    /// Puts an encoded page into the table and frees what the slot held before.
    @inline(__always)
    func install(_ encoded: EncodedPage, at index: Int) {
        let slot = table.slot(index)
        let old = slot.lock()
        let oldPayload = slot.pointee.payload
        slot.pointee.payload = encoded.payload
        slot.unlock(setting: encoded.state)
        counters.record(encoded.state)
        release(old, payload: oldPayload)
    }

    /// Reads `destination.count` bytes from `offset` inside page `index`.
    func readPage(
        _ index: Int, into destination: UnsafeMutableRawBufferPointer, at offset: Int, stream: CompressionStream
    ) throws(ZramError) {
        guard let slot = table.existingSlot(index) else {
            SameFilledPage.fill(destination, with: 0, phase: 0)
            return
        }
        let state = slot.lock()
        defer { slot.unlock(setting: state.withoutIdle) }
        let payload = slot.pointee.payload
        if state.isSame || !state.hasObject {
            SameFilledPage.fill(destination, with: state.isSame ? payload : 0, phase: offset)
        } else if destination.count == pageSize {
            try decode(state, payload: payload, into: destination, stream: stream)
        } else if state.isHuge {
            pool.withObject(ObjectHandle(rawValue: payload), size: pageSize) { object in
                destination.baseAddress!.copyMemory(from: object.baseAddress! + offset, byteCount: destination.count)
            }
        } else {
            try decode(state, payload: payload, into: stream.workPage, stream: stream)
            destination.baseAddress!.copyMemory(
                from: stream.workPage.baseAddress! + offset, byteCount: destination.count)
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

    /// Marks page `index` idle if it holds data (zram's `idle all`).
    func markIdle(_ index: Int) {
        guard let slot = table.existingSlot(index) else { return }
        let state = slot.lock()
        slot.unlock(setting: state.isStored ? PageState(rawValue: state.rawValue | PageState.idleBit) : state)
    }
}
