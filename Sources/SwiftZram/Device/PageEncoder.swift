/// Turns a full page into its stored form: a fill word (same-filled page), a
/// compressed object, or a raw object when compression does not pay
/// (compressed size above `ZsPool.hugeThreshold`), as zram_write_page does.
struct PageEncoder: Sendable {
    let pool: ZsPool
    let counters: DeviceCounters

    /// How a page is stored: its table state and the payload word that goes with it.
    struct EncodedPage {
        var state: PageState
        var payload: UInt64
    }

    /// - Parameter limit: mem_limit in bytes, 0 for none.
    /// - Throws: having changed nothing, `memoryLimitReached` if the object's pages would take
    ///   mem_used_total past `limit`, `outOfMemory` if the OS refuses memory.
    @inline(__always)
    func encode(_ page: UnsafeRawBufferPointer, stream: CompressionStream, limit: Int) throws(ZramError) -> EncodedPage {
        if let word = SameFilledPage.fillWord(of: page) {
            return EncodedPage(state: .same(word), payload: word)
        }
        let compressed = stream.compress(page)
        let huge = compressed.count > ZsPool.hugeThreshold
        let object = huge ? page : compressed
        let queued = counters.queuedPages.load(ordering: .relaxed) * pageSize
        let handle: ObjectHandle
        switch pool.store(object, memoryLimit: limit == 0 ? 0 : max(limit - queued, 1)) {
        case .stored(let stored): handle = stored
        case .overLimit: throw ZramError(.memoryLimitReached, "mem_limit of \(limit) bytes reached")
        case .outOfMemory: throw ZramError(.outOfMemory, "the system refused memory for a page")
        }
        counters.notePeak(pool.memoryUsed + queued)
        return EncodedPage(state: .object(size: object.count, huge: huge), payload: handle.rawValue)
    }
}
