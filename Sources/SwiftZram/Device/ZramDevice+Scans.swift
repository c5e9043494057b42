/// Whole-device work on the control path: idle marking and counting, and
/// compaction. Each runs in bounded batches (see `scanInBatches`), so a scan
/// of a large device never queues I/O behind a pending reset for long.
extension ZramDevice {
    /// Table chunks (1024 pages each) one idle batch covers.
    static let idleBatchChunks = 16
    /// Zspages one compaction batch frees at most.
    static let compactionBatchSteps = 64

    /// Marks every stored page idle (`idle all`); a later access clears the mark.
    public func markAllIdle() { markAllIdle(batchChunks: Self.idleBatchChunks) }

    /// Counts idle pages (for status and for later writeback and recompression).
    public var idlePages: Int { countIdlePages(batchChunks: Self.idleBatchChunks) }

    /// Compacts the allocator now.
    /// - Returns: pages freed.
    @discardableResult
    public func compact() -> Int { compact(batchSteps: Self.compactionBatchSteps) }

    /// - Returns: the batches run.
    @discardableResult
    func markAllIdle(batchChunks: Int, afterEachBatch: () -> Void = {}) -> Int {
        markIdle(batchChunks: batchChunks, afterEachBatch: afterEachBatch) { _ in nil }
    }

    /// Marks pages idle in batches; `cutoff` gives, per batch, the access time before which
    /// a page counts as idle (nil: every page).
    /// - Returns: the batches run.
    @discardableResult
    func markIdle(batchChunks: Int, afterEachBatch: () -> Void = {}, cutoff: (ZramStore) -> UInt64?) -> Int {
        var page = 0
        return scanInBatches(afterEachBatch: afterEachBatch) { store in
            let before = cutoff(store)
            return forEachChunk(of: store, from: &page, limit: batchChunks) { firstPage, _ in
                for index in firstPage..<min(firstPage + PageTable.pagesPerChunk, store.table.pageCount) {
                    store.markIdle(index, accessedBefore: before)
                }
            }
        }
    }

    /// The idle pages; 0 if the device is reset meanwhile.
    func countIdlePages(batchChunks: Int, afterEachBatch: () -> Void = {}) -> Int {
        var page = 0
        var count = 0
        var finished = false
        scanInBatches(afterEachBatch: afterEachBatch) { store in
            let more = forEachChunk(of: store, from: &page, limit: batchChunks) { _, slots in
                for offset in 0..<PageTable.pagesPerChunk where (slots + offset).unlockedState.isIdle { count += 1 }
            }
            finished = !more
            return more
        }
        return finished ? count : 0
    }

    /// - Returns: pages freed.
    func compact(batchSteps: Int, afterEachBatch: () -> Void = {}) -> Int {
        var cursor = 0
        var freed = 0
        scanInBatches(afterEachBatch: afterEachBatch) { store in
            store.drain()
            freed += store.pool.compact(steps: batchSteps, cursor: &cursor)
            return cursor < store.pool.classes.count
        }
        return freed
    }

    /// Calls `body` for up to `limit` allocated chunks from page `page` on, and moves `page` past them.
    /// - Returns: whether chunks may remain.
    func forEachChunk(
        of store: ZramStore, from page: inout Int, limit: Int,
        _ body: (Int, UnsafeMutablePointer<PageSlot>) -> Void
    ) -> Bool {
        for _ in 0..<limit {
            guard let chunk = store.table.nextChunk(atOrAfter: page) else { return false }
            body(chunk.firstPage, chunk.slots)
            page = chunk.firstPage + PageTable.pagesPerChunk
        }
        return true
    }
}
