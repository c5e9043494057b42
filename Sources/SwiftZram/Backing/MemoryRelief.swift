import Synchronization

/// Automatic writeback at `mem_limit` (`writeback_auto 1`; off by default, and then
/// the device fails the write as the kernel's zram does). When a full-page write
/// would take `mem_used_total` past the limit, the writer moves pages to the
/// backing store and tries again: idle pages first, then any, from a cursor that
/// goes round the table (a clock, so recently written pages are the last to go),
/// within `writeback_limit`. This is what zswap does when its pool is full, and
/// it keeps zram from pinning cold pages in RAM while it refuses warm ones.
///
/// It takes the device's post-processing flag like a manual writeback, so it never
/// runs beside a writeback or a recompression: then the write fails as it would
/// without it. Partial-page writes hold their page's lock while they encode, and
/// never wait for other pages' locks, so they fail at the limit as in the kernel.
final class MemoryRelief: Sendable {
    /// The device owns the store that owns this; it outlives both.
    unowned let device: ZramDevice
    /// Where the next search for pages to move starts.
    private let cursor = Atomic<Int>(0)

    /// Batches one failed write may move before it gives up.
    static let batchesPerWrite = 8

    init(device: ZramDevice) { self.device = device }

    /// Moves pages of `store` to its backing store to make room under mem_limit.
    /// - Returns: whether any page moved (the caller tries its write again).
    func makeRoom(in store: ZramStore) -> Bool {
        guard device.writebackControls.autoEnabled.load(ordering: .relaxed), store.backing != nil else { return false }
        guard !device.postProcessing.exchange(true, ordering: .acquiring) else { return false }
        defer { device.postProcessing.store(false, ordering: .releasing) }
        let size = Int(device.writebackControls.batchSize.load(ordering: .relaxed))
        guard let batch = try? WritebackBatch(capacity: min(max(size, 1), ZramDevice.largestWritebackBatch)) else {
            return false
        }
        let pageCount = store.table.pageCount
        let start = cursor.load(ordering: .relaxed) % max(pageCount, 1)
        for filter in [WritebackFilter.idle, .any] {
            var moved = 0
            var position = start
            var wrapped = false
            for _ in 0..<Self.batchesPerWrite {
                let range = wrapped ? 0..<start : start..<pageCount
                let picked = store.pickWriteback(
                    filter, pages: range, cursor: &position, batch: batch, controls: device.writebackControls)
                _ = store.writeBatch(batch)
                moved += store.installBatch(batch, controls: device.writebackControls)
                if picked.stop != nil { break }
                if picked.finished {
                    guard !wrapped else { break }
                    wrapped = true
                    position = 0
                }
                if moved > 0 && store.memoryUsed + pageSize <= store.counters.memLimit.load(ordering: .relaxed) { break }
            }
            cursor.store(position, ordering: .relaxed)
            if moved > 0 {
                device.writebackControls.pagesMovedAutomatically.wrappingAdd(moved, ordering: .relaxed)
                return true
            }
        }
        return false
    }
}

extension ZramStore {
    /// Times one write asks ``MemoryRelief`` for room before it fails at mem_limit.
    static let reliefsPerWrite = 4
}
