#if canImport(Glibc)
import Glibc
#endif

/// How a thread waits for something another thread holds for a short time
/// (a page's lock bit, a compression stream): spin a little, since the holder
/// is most likely running and almost done; then yield the CPU a few times;
/// then sleep for growing intervals. In userspace a holder can be preempted,
/// and waiters that only spin and yield would keep it off the CPU.
struct Backoff {
    /// Busy rounds before the first `sched_yield`.
    static let spinRounds = 64
    /// `sched_yield` rounds before the first sleep.
    static let yieldRounds = 8
    /// The first sleep; each next one doubles, up to ``longestSleepNanoseconds``.
    static let firstSleepNanoseconds = 1_000
    static let longestSleepNanoseconds = 200_000

    private var rounds = 0

    /// Waits once: a spin, a yield or a sleep, depending on how long this waiter has waited.
    @inline(__always)
    mutating func pause() {
        if !spinOrYield() { sleep() }
    }

    /// Spins or yields once.
    /// - Returns: false, without waiting, once spinning and yielding are used up.
    @inline(__always)
    mutating func spinOrYield() -> Bool {
        guard rounds < Self.spinRounds + Self.yieldRounds else { return false }
        rounds &+= 1
        if rounds > Self.spinRounds { sched_yield() }
        return true
    }

    /// Sleeps for the next interval.
    @inline(never)
    mutating func sleep() {
        let doublings = min(sleeps, 16)
        let nanoseconds = min(Self.firstSleepNanoseconds << doublings, Self.longestSleepNanoseconds)
        var interval = timespec(tv_sec: 0, tv_nsec: nanoseconds)
        _ = nanosleep(&interval, nil)
        rounds &+= 1
    }

    /// Sleeps taken so far (for tests).
    var sleeps: Int { max(0, rounds - Self.spinRounds - Self.yieldRounds) }
}
