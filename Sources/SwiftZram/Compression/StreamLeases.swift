import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Which of up to 64 streams are free, as one atomic bitmap (bit set = free).
///
/// Checkout is a compare-exchange on one word; when every stream is busy the
/// caller spins briefly, then yields the CPU until a stream comes back.
struct StreamLeases: ~Copyable {
    /// The most streams one bitmap can track.
    static let capacity = UInt64.bitWidth
    /// Busy rounds before a waiter starts calling `sched_yield`.
    static let spinRounds = 64

    private let free: Atomic<UInt64>

    /// All `count` streams start free.
    init(count: Int) {
        precondition((1...Self.capacity).contains(count), "stream count \(count) is outside 1...64")
        free = Atomic(count == Self.capacity ? UInt64.max : (UInt64(1) << count) - 1)
    }

    /// Takes a free stream, waiting for one if all are busy.
    /// - Returns: The stream's index; give it back with ``release(_:)``.
    func acquire() -> Int {
        var rounds = 0
        while true {
            var current = free.load(ordering: .relaxed)
            while current != 0 {
                let index = current.trailingZeroBitCount
                let (taken, seen) = free.compareExchange(
                    expected: current, desired: current & ~(UInt64(1) << index),
                    successOrdering: .acquiring, failureOrdering: .relaxed)
                if taken { return index }
                current = seen
            }
            rounds += 1
            if rounds > Self.spinRounds { sched_yield() }
        }
    }

    /// Returns a stream taken with ``acquire()``.
    func release(_ index: Int) {
        let bit = UInt64(1) << index
        let before = free.bitwiseOr(bit, ordering: .releasing).oldValue
        assert(before & bit == 0, "stream \(index) released twice")
    }
}
