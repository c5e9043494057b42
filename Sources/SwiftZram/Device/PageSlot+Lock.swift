#if canImport(Glibc)
import Glibc
#endif
import Synchronization

extension UnsafeMutablePointer where Pointee == PageSlot {
    /// Takes the slot's lock bit and returns the state it guarded.
    /// Slots are held only for one page's work, so a waiter spins briefly, then
    /// yields, then sleeps (``Backoff``) in case the holder was preempted.
    @inline(__always)
    func lock() -> PageState {
        var backoff = Backoff()
        while true {
            let current = pointee.state.load(ordering: .relaxed)
            if current & PageState.lockBit == 0 {
                let (won, _) = pointee.state.weakCompareExchange(
                    expected: current, desired: current | PageState.lockBit,
                    successOrdering: .acquiring, failureOrdering: .relaxed)
                if won { return PageState(rawValue: current) }
            }
            backoff.pause()
        }
    }

    /// Publishes `state` and releases the lock.
    @inline(__always)
    func unlock(setting state: PageState) {
        pointee.state.store(state.withoutLock.rawValue, ordering: .releasing)
    }

    /// The state without taking the lock (for block status and statistics).
    @inline(__always)
    var unlockedState: PageState {
        PageState(rawValue: pointee.state.load(ordering: .acquiring)).withoutLock
    }
}
