#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Seconds since the device was initialised, for the access time every read and
/// write stamps on its page (zram's `ac_time`, CONFIG_ZRAM_TRACK_ENTRY_ACTIME) and
/// for `idle` with an age.
///
/// Read once per page, so it must be cheap: CLOCK_MONOTONIC_COARSE is answered by
/// the vDSO from the kernel's tick, with no syscall. Unlike the kernel's boottime
/// seconds it does not count time the machine spent suspended.
///
/// A manual clock (tests) reads only what ``advance(bySeconds:)`` set, so an age
/// test never sleeps.
final class AccessClock: Sendable {
    private let origin: Int
    private let manualSeconds: Atomic<Int>?

    /// - Parameter manual: start at 0 and move only through ``advance(bySeconds:)``.
    init(manual: Bool = false) {
        origin = manual ? 0 : Self.coarseSeconds()
        manualSeconds = manual ? Atomic(0) : nil
    }

    /// Seconds since init, clamped to the 31 bits a page's state holds.
    @inline(__always)
    var now: UInt64 {
        let seconds = manualSeconds?.load(ordering: .relaxed) ?? (Self.coarseSeconds() &- origin)
        return UInt64(min(max(seconds, 0), Int(PageState.accessTimeMask >> PageState.accessTimeShift)))
    }

    /// Moves a manual clock forward (no effect on the system clock).
    func advance(bySeconds seconds: Int) {
        manualSeconds?.add(seconds, ordering: .relaxed)
    }

    @inline(__always)
    private static func coarseSeconds() -> Int {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC_COARSE, &time)
        return time.tv_sec
    }
}
