import Synchronization

/// The live counters behind `mm_stat`, `io_stat` and `stat`, as atomics so
/// that the data path never takes a lock to count.
final class DeviceCounters: Sendable {
    /// Pages stored in any form (orig_data_size / 4096).
    let storedPages = Atomic<Int>(0)
    /// Sum of stored object sizes; a huge page counts 4096.
    let comprDataSize = Atomic<Int>(0)
    let samePages = Atomic<Int>(0)
    /// Pages waiting raw in the compression queue (counted as 4096 compressed bytes until compressed).
    let queuedPages = Atomic<Int>(0)
    let hugePages = Atomic<Int>(0)
    let hugePagesSince = Atomic<Int>(0)
    let memUsedMax = Atomic<Int>(0)
    /// mem_limit in bytes, page aligned; 0 means none. Changeable at any time.
    let memLimit = Atomic<Int>(0)

    let failedReads = Atomic<Int>(0)
    let failedWrites = Atomic<Int>(0)
    let invalidIO = Atomic<Int>(0)
    let notifyFree = Atomic<Int>(0)

    /// Pages a recompression stored smaller, and the compressed bytes that saved (running totals).
    let recompressedPages = Atomic<Int>(0)
    let recompressionSavedBytes = Atomic<Int>(0)

    /// Pages read and written (zram's num_reads / num_writes).
    let pagesRead = Atomic<Int>(0)
    let pagesWritten = Atomic<Int>(0)

    /// Raises the recorded peak to `used` if it is higher.
    @inline(__always)
    func notePeak(_ used: Int) {
        var peak = memUsedMax.load(ordering: .relaxed)
        while used > peak {
            let (won, current) = memUsedMax.weakCompareExchange(
                expected: peak, desired: used, ordering: .relaxed)
            if won { return }
            peak = current
        }
    }

    /// Adjusts the counters for a page leaving `state`.
    @inline(__always)
    func forget(_ state: PageState) { count(state, -1) }

    /// Adjusts the counters for a page entering `state` (huge pages also count in huge_pages_since).
    @inline(__always)
    func record(_ state: PageState) {
        count(state, 1)
        if state.isHuge && !state.isWrittenBack { hugePagesSince.wrappingAdd(1, ordering: .relaxed) }
    }

    /// Adds `sign` (±1) pages of `state` to the counters that describe current contents.
    @inline(__always)
    private func count(_ state: PageState, _ sign: Int) {
        guard state.isStored else { return }
        storedPages.wrappingAdd(sign, ordering: .relaxed)
        if state.isWrittenBack {
            return  // in the backing store: no memory, no compressed bytes, not huge (as the kernel counts)
        } else if state.isSame {
            samePages.wrappingAdd(sign, ordering: .relaxed)
        } else if state.isQueued {
            queuedPages.wrappingAdd(sign, ordering: .relaxed)
        } else {
            comprDataSize.wrappingAdd(sign * state.objectSize, ordering: .relaxed)
            if state.isHuge { hugePages.wrappingAdd(sign, ordering: .relaxed) }
        }
    }
}
