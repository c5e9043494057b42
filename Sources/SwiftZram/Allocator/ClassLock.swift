import CPlatform
import Synchronization

/// A size class's lock: a futex word that a waiter spins on briefly, then sleeps on.
///
/// Synchronization.Mutex on Linux spins about a thousand times before it sleeps on a
/// priority-inheriting futex. Every read pins and unpins its object under its class's
/// lock, so many connection or FUSE threads on few CPUs meet there all the time, and
/// when the holder had been preempted every waiter spun its whole budget: 8 NBD
/// connections of 4 KiB random reads on 2 CPUs spent half their CPU time spinning and
/// fell from 219k to 16k IOPS. A class's critical sections are a few loads and stores,
/// so this lock spins ``spins`` times, then sleeps until the holder wakes it.
///
/// The word is 0 (free), 1 (held) or 2 (held, and someone may sleep on it), as in
/// Drepper's "Futexes Are Tricky" (mutex 2).
struct ClassLock<Value: ~Copyable>: ~Copyable {
    private let word: UnsafeMutablePointer<Atomic<UInt32>>
    private let value: UnsafeMutablePointer<Value>
    static var spins: Int { 100 }

    init(_ initial: consuming Value) {
        word = .allocate(capacity: 1)
        word.initialize(to: Atomic(0))
        value = .allocate(capacity: 1)
        value.initialize(to: initial)
    }

    deinit {
        value.deinitialize(count: 1)
        value.deallocate()
        word.deinitialize(count: 1)
        word.deallocate()
    }

    @inline(__always)
    borrowing func withLock<R, E: Error>(_ body: (inout Value) throws(E) -> R) throws(E) -> R {
        if !word.pointee.compareExchange(expected: 0, desired: 1, successOrdering: .acquiring, failureOrdering: .relaxed).exchanged {
            lockContended()
        }
        defer {
            if word.pointee.exchange(0, ordering: .releasing) == 2 { cplatform_futex_wake_one(UnsafeRawPointer(word)) }
        }
        return try body(&value.pointee)
    }

    @inline(never)
    private borrowing func lockContended() {
        for _ in 0..<Self.spins {
            cplatform_spin_hint()
            if word.pointee.load(ordering: .relaxed) == 0,
                word.pointee.compareExchange(expected: 0, desired: 1, successOrdering: .acquiring, failureOrdering: .relaxed).exchanged
            {
                return
            }
        }
        // Mark the lock as slept on, then sleep until it is free.
        while word.pointee.exchange(2, ordering: .acquiring) != 0 {
            cplatform_futex_wait(UnsafeRawPointer(word), 2)
        }
    }
}

// @unchecked: the value is reached only inside `withLock`, which the word's
// acquire/release exchanges make exclusive; the two pointers never change.
extension ClassLock: @unchecked Sendable where Value: ~Copyable {}
