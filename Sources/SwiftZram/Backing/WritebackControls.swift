import Synchronization

/// A device's writeback knobs: writeback_limit_enable, writeback_limit (pages of
/// 4 KiB still allowed) and writeback_batch_size. They live as long as the device:
/// reset keeps them, as the kernel keeps `wb_limit_enable` and `bd_wb_limit`.
final class WritebackControls: Sendable {
    let limitEnabled = Atomic<Bool>(false)
    let limit = Atomic<UInt64>(0)
    let batchSize = Atomic<UInt32>(WritebackControls.defaultBatchSize)
    /// writeback_auto: a full-page write that would pass mem_limit writes pages back
    /// first (``MemoryRelief``). Off by default, as the kernel has no such thing.
    let autoEnabled = Atomic<Bool>(false)
    /// writeback_layout: objects packed into shared blocks instead of a block per page
    /// (``PackedBlockSpace``). Applies at the next disksize.
    let packedLayout = Atomic<Bool>(false)
    /// Pages automatic writeback moved (they also count in bd_writes).
    let pagesMovedAutomatically = Atomic<Int>(0)

    /// The kernel's default writeback_batch_size.
    static let defaultBatchSize: UInt32 = 32

    /// What taking one page of the limit gave.
    enum Charge {
        /// The limit is used up: the page may not be written.
        case refused
        /// The page was counted against the limit (give it back if it is not written).
        case charged
        /// The limit is off.
        case free
    }

    /// Takes one page of writeback_limit, if the limit is on.
    func take() -> Charge {
        guard limitEnabled.load(ordering: .relaxed) else { return .free }
        var left = limit.load(ordering: .relaxed)
        while left > 0 {
            let (won, seen) = limit.weakCompareExchange(expected: left, desired: left - 1, ordering: .relaxed)
            if won { return .charged }
            left = seen
        }
        return .refused
    }

    /// Returns a page taken for a copy that was not installed.
    func giveBack(_ charge: Charge) {
        if charge == .charged { limit.add(1, ordering: .relaxed) }
    }
}
