#if canImport(Glibc)
import Glibc
#endif

/// CLOCK_MONOTONIC, for the polling budgets of the threads that wait for work.
enum MonotonicClock {
    @inline(__always)
    static func nanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
    }
}
