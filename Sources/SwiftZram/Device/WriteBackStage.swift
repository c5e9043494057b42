#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Pages a write has accepted but not yet compressed: a ring of raw page
/// slots that one background thread compresses in order.
///
/// A full-page write that is not same-filled copies its page into the next
/// slot and returns at once, so the client's round trip pays for a memcpy, not
/// for compression; the compressor thread (`ZramStore.runCompressor`) then
/// stores the page as any write would. When the ring is full, writers
/// compress inline, so a busy device uses its writer threads and the
/// compressor at once.
///
/// A slot is reused only after the compressor has passed it, and the page
/// table points at a slot only while it holds the page's data; readers copy
/// from the slot under the page's lock.
// @unchecked: `owners`/`ready`/slot buffers follow the protocol above; ring
// indices are guarded by `lock`; `waiters` and `stopping` likewise.
final class WriteBackStage: @unchecked Sendable {
    /// Slots in the ring (a power of two).
    let capacity: Int
    private let buffers: UnsafeMutableRawPointer
    private let owners: UnsafeMutablePointer<Int>
    private let ready: UnsafeMutablePointer<Atomic<Bool>>
    private let lock: UnsafeMutablePointer<pthread_mutex_t>
    private let changed: UnsafeMutablePointer<pthread_cond_t>
    /// Next sequence number to fill, and next to compress (both only grow).
    private var head = 0
    private var tail = 0
    private var stopping = false
    /// Slots holding pages (head - tail), readable without the lock.
    let occupied = Atomic<Int>(0)

    init(capacity: Int) {
        precondition(capacity > 0 && capacity & (capacity - 1) == 0, "stage capacity must be a power of two")
        self.capacity = capacity
        buffers = UnsafeMutableRawPointer.allocate(byteCount: capacity * pageSize, alignment: pageSize)
        owners = .allocate(capacity: capacity)
        owners.initialize(repeating: 0, count: capacity)
        ready = .allocate(capacity: capacity)
        for i in 0..<capacity { (ready + i).initialize(to: Atomic(false)) }
        lock = .allocate(capacity: 1)
        pthread_mutex_init(lock, nil)
        changed = .allocate(capacity: 1)
        pthread_cond_init(changed, nil)
    }

    deinit {
        pthread_cond_destroy(changed)
        pthread_mutex_destroy(lock)
        changed.deallocate()
        lock.deallocate()
        ready.deinitialize(count: capacity)
        ready.deallocate()
        owners.deallocate()
        buffers.deallocate()
    }

    /// The raw page in slot `slot`.
    @inline(__always)
    func buffer(_ slot: Int) -> UnsafeMutableRawPointer { buffers + slot * pageSize }

    @inline(__always)
    func slot(ofSequence sequence: Int) -> Int { sequence & (capacity - 1) }

    /// Takes the next slot for a writer, or nil when the ring is full (write inline then).
    @inline(__always)
    func reserve() -> Int? {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        guard !stopping, head - tail < capacity else { return nil }
        let sequence = head
        head += 1
        occupied.add(1, ordering: .relaxed)
        return sequence
    }

    /// Hands a filled slot to the compressor. Call after the page table points at it.
    @inline(__always)
    func publish(_ sequence: Int, page: Int) {
        let slot = slot(ofSequence: sequence)
        owners[slot] = page
        ready[slot].store(true, ordering: .releasing)
        pthread_mutex_lock(lock)
        pthread_cond_broadcast(changed)
        pthread_mutex_unlock(lock)
    }

    /// The compressor's next slot and the page it was written for; blocks until
    /// there is one. nil once `stop()` was called and the ring is empty.
    func next() -> (sequence: Int, page: Int)? {
        pthread_mutex_lock(lock)
        while tail == head && !stopping { pthread_cond_wait(changed, lock) }
        guard tail < head else {
            pthread_mutex_unlock(lock)
            return nil
        }
        let sequence = tail
        pthread_mutex_unlock(lock)
        let slot = slot(ofSequence: sequence)
        // The writer reserved the slot before filling it; it publishes within microseconds.
        var spins = 0
        while !ready[slot].load(ordering: .acquiring) {
            spins += 1
            if spins > 64 { sched_yield() }
        }
        return (sequence, owners[slot])
    }

    /// Frees the compressor's current slot for reuse.
    func retire(_ sequence: Int) {
        ready[slot(ofSequence: sequence)].store(false, ordering: .relaxed)
        pthread_mutex_lock(lock)
        precondition(sequence == tail, "the compressor retires slots in order")
        tail += 1
        occupied.subtract(1, ordering: .relaxed)
        pthread_cond_broadcast(changed)
        pthread_mutex_unlock(lock)
    }

    /// Waits until every page staged before this call has been compressed.
    func drain() {
        pthread_mutex_lock(lock)
        let target = head
        while tail < target { pthread_cond_wait(changed, lock) }
        pthread_mutex_unlock(lock)
    }

    /// Refuses new pages and wakes the compressor, which finishes what is staged.
    func stop() {
        pthread_mutex_lock(lock)
        stopping = true
        pthread_cond_broadcast(changed)
        pthread_mutex_unlock(lock)
    }
}
