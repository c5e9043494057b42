#if canImport(Glibc)
import Glibc
#endif
import Synchronization

extension UnsafeMutablePointer where Pointee == PageSlot {
    /// Takes the slot's lock bit and returns the state it guarded.
    /// Waits by spinning, then yielding: slots are held only for one page's work.
    @inline(__always)
    func lock() -> PageState {
        var spins = 0
        while true {
            let current = pointee.state.load(ordering: .relaxed)
            if current & PageState.lockBit == 0 {
                let (won, _) = pointee.state.weakCompareExchange(
                    expected: current, desired: current | PageState.lockBit,
                    successOrdering: .acquiring, failureOrdering: .relaxed)
                if won { return PageState(rawValue: current) }
            }
            spins &+= 1
            if spins > 64 { sched_yield() }
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
