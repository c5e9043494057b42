import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Which of up to 64 streams are free, as one atomic bitmap (bit set = free).
///
/// Checkout is a compare-exchange on one word. When every stream is busy the
/// caller spins briefly, yields a few times, then sleeps on a condition
/// variable until a stream comes back; a release rings it only when someone
/// sleeps, so the uncontended path never touches the mutex.
struct StreamLeases: ~Copyable {
    /// The most streams one bitmap can track.
    static let capacity = UInt64.bitWidth

    private let free: Atomic<UInt64>
    /// Threads asleep (or about to sleep) waiting for a stream.
    private let sleepers = Atomic<Int>(0)
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let released: UnsafeMutablePointer<pthread_cond_t>

    /// All `count` streams start free.
    /// - Returns: nil if the system refuses memory for the sleeping place.
    init?(count: Int) {
        precondition((1...Self.capacity).contains(count), "stream count \(count) is outside 1...64")
        let mutex = malloc(MemoryLayout<pthread_mutex_t>.stride)
        let released = malloc(MemoryLayout<pthread_cond_t>.stride)
        guard let mutex, let released else {
            Glibc.free(mutex)
            Glibc.free(released)
            return nil
        }
        self.mutex = mutex.bindMemory(to: pthread_mutex_t.self, capacity: 1)
        self.released = released.bindMemory(to: pthread_cond_t.self, capacity: 1)
        pthread_mutex_init(self.mutex, nil)
        pthread_cond_init(self.released, nil)
        free = Atomic(count == Self.capacity ? UInt64.max : (UInt64(1) << count) - 1)
    }

    deinit {
        pthread_cond_destroy(released)
        pthread_mutex_destroy(mutex)
        Glibc.free(released)
        Glibc.free(mutex)
    }

    /// Takes a free stream, waiting for one if all are busy.
    /// - Returns: The stream's index; give it back with ``release(_:)``.
    func acquire() -> Int {
        var backoff = Backoff()
        repeat {
            if let index = tryAcquire() { return index }
        } while backoff.spinOrYield()
        return acquireSleeping()
    }

    @inline(__always)
    private func tryAcquire() -> Int? {
        var current = free.load(ordering: .sequentiallyConsistent)
        while current != 0 {
            let index = current.trailingZeroBitCount
            let (taken, seen) = free.compareExchange(
                expected: current, desired: current & ~(UInt64(1) << index), ordering: .sequentiallyConsistent)
            if taken { return index }
            current = seen
        }
        return nil
    }

    /// Sleeps until a release finds this thread counted in `sleepers`.
    @inline(never)
    private func acquireSleeping() -> Int {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        // Counted before the last look at the bitmap: a release either comes after
        // that look (and sees a sleeper to wake) or before it (and the look finds its stream).
        sleepers.add(1, ordering: .sequentiallyConsistent)
        defer { sleepers.subtract(1, ordering: .sequentiallyConsistent) }
        while true {
            if let index = tryAcquire() { return index }
            pthread_cond_wait(released, mutex)
        }
    }

    /// Threads asleep waiting for a stream now.
    var sleepingWaiters: Int { sleepers.load(ordering: .relaxed) }

    /// Returns a stream taken with ``acquire()``.
    func release(_ index: Int) {
        let bit = UInt64(1) << index
        let before = free.bitwiseOr(bit, ordering: .sequentiallyConsistent).oldValue
        assert(before & bit == 0, "stream \(index) released twice")
        if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
            pthread_mutex_lock(mutex)
            pthread_cond_signal(released)
            pthread_mutex_unlock(mutex)
        }
    }
}
