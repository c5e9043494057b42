/// The coldest pages of a device, found by one scan of its table and handed out a
/// batch at a time, so that a scan (O(pages)) is paid once per
/// ``ColdPageQueue/capacity`` pages written back, not once per batch.
///
/// Coldest means: idle pages first, then the oldest access time. A page is taken
/// only if it was not accessed after the scan saw it (checked under its lock), so a
/// stale entry costs a skip, never a hot page written back.
struct ColdPageQueue {
    struct Candidate {
        var page: Int
        /// The page's access time when the scan saw it.
        var accessTime: UInt64
        /// Idle pages sort before all others, then older before newer.
        var key: UInt64
    }

    /// Pages one scan keeps.
    static let capacity = 1024

    /// Coldest last, so that taking one is `popLast`.
    private(set) var pages: [Candidate] = []

    init() { pages.reserveCapacity(Self.capacity) }

    var isEmpty: Bool { pages.isEmpty }

    mutating func next() -> Candidate? { pages.popLast() }

    mutating func removeAll() { pages.removeAll(keepingCapacity: true) }

    /// Refills with the coldest pages of `store` that hold an object in RAM and that
    /// were last accessed before `cutoff` (any time when nil).
    mutating func refill(from store: ZramStore, accessedBefore cutoff: UInt64?) {
        pages.removeAll(keepingCapacity: true)
        var page = 0
        // A max-heap on `key` of the coldest pages seen so far: its top is the warmest kept.
        while let chunk = store.table.nextChunk(atOrAfter: page) {
            let count = min(PageTable.pagesPerChunk, store.table.pageCount - chunk.firstPage)
            for offset in 0..<count {
                let state = (chunk.slots + offset).unlockedState
                guard state.hasObject, !state.isPostProcessing else { continue }
                let time = state.accessTime
                if let cutoff, time >= cutoff { continue }
                let key = (state.isIdle ? 0 : UInt64(1) << 40) | time
                if pages.count < Self.capacity {
                    pages.append(Candidate(page: chunk.firstPage + offset, accessTime: time, key: key))
                    siftUp(pages.count - 1)
                } else if key < pages[0].key {
                    pages[0] = Candidate(page: chunk.firstPage + offset, accessTime: time, key: key)
                    siftDown(0)
                }
            }
            page = chunk.firstPage + PageTable.pagesPerChunk
        }
        // Warmest first, so popLast gives the coldest; equal keys keep page order.
        pages.sort { $0.key != $1.key ? $0.key > $1.key : $0.page > $1.page }
    }

    private mutating func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard pages[child].key > pages[parent].key else { return }
            pages.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        while true {
            var largest = parent
            let left = 2 * parent + 1, right = left + 1
            if left < pages.count && pages[left].key > pages[largest].key { largest = left }
            if right < pages.count && pages[right].key > pages[largest].key { largest = right }
            guard largest != parent else { return }
            pages.swapAt(parent, largest)
            parent = largest
        }
    }
}

extension ZramStore {
    /// Picks pages from `queue` into `batch` as writeback's pick step does (see
    /// `pickWriteback`): under each page's lock, reserves backing room and a unit of
    /// writeback_limit, copies the object and marks the slot post-processing.
    /// - Returns: why picking stopped early, if it did.
    func pickCold(
        from queue: inout ColdPageQueue, accessedBefore cutoff: UInt64?, batch: WritebackBatch,
        controls: WritebackControls
    ) -> WritebackStop? {
        guard let backing else { return nil }
        while batch.entries.count < batch.capacity, let candidate = queue.next() {
            guard let slot = table.existingSlot(candidate.page) else { continue }
            let quick = slot.unlockedState
            guard quick.hasObject, !quick.isPostProcessing, quick.accessTime <= candidate.accessTime else { continue }
            let state = slot.lock()
            guard state.hasObject, !state.isPostProcessing, state.accessTime <= candidate.accessTime,
                cutoff.map({ state.accessTime < $0 }) ?? true
            else {
                slot.unlock(setting: state)
                continue
            }
            let charge = controls.take()
            guard charge != .refused else {
                slot.unlock(setting: state)
                return .limitReached
            }
            let size = state.objectSize
            guard let location = backing.space.allocate(bytes: size) else {
                slot.unlock(setting: state)
                controls.giveBack(charge)
                return .noSpace
            }
            stage(slot, state, page: candidate.page, at: location, charge: charge, into: batch)
        }
        return nil
    }

    /// Writes back one batch of the coldest pages (refilling `queue` by a scan when it
    /// runs dry), then compacts a little so that the freed objects become free pages.
    /// The caller holds the device's post-processing flag and the lifecycle lock shared.
    /// - Returns: pages written back, and why picking stopped, if it did.
    func writeBackColdBatch(
        queue: inout ColdPageQueue, accessedBefore cutoff: UInt64?, batch: WritebackBatch,
        controls: WritebackControls
    ) -> (written: Int, stop: WritebackStop?) {
        var refilled = false
        if queue.isEmpty {
            queue.refill(from: self, accessedBefore: cutoff)
            refilled = true
        }
        var stop = pickCold(from: &queue, accessedBefore: cutoff, batch: batch, controls: controls)
        if stop == nil && batch.entries.count < batch.capacity && !refilled {
            // What an earlier scan found ran dry or went stale: one fresh scan fills the batch.
            queue.refill(from: self, accessedBefore: cutoff)
            stop = pickCold(from: &queue, accessedBefore: cutoff, batch: batch, controls: controls)
        }
        // A packed layout starts the next batch in a fresh block: this batch's images are the only copies of its blocks.
        backing?.space.sealBatch()
        _ = writeBatch(batch)  // a failed write leaves its pages in RAM; the caller sees fewer written
        let written = installBatch(batch, controls: controls)
        if written > 0 {
            var cursor = 0
            _ = pool.compact(steps: Self.compactionStepsPerColdBatch, cursor: &cursor)
        }
        return (written, stop)
    }

    /// Zspages one cold batch's compaction frees at most.
    static let compactionStepsPerColdBatch = 16
}
