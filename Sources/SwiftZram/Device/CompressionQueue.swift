#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Pages a write has accepted but not yet compressed: a ring of raw page
/// slots that one background thread compresses in order.
///
/// A full-page write that is not same-filled copies its page into the next
/// slot and returns at once, so the client's round trip pays for a memcpy, not
/// for compression; the compressor thread (`CompressorWorker`) then stores the
/// page as any write would, and frees the object the write replaced. When the
/// ring is full, writers compress inline, so a busy device uses its writer
/// threads and the compressor at once.
///
/// The hand-off takes no lock: writers claim sequence numbers with a
/// compare-exchange on `head` and mark their slot ready; the compressor
/// advances `tail`. The mutex and condition variable are only for sleeping:
/// the compressor when the ring is empty, and `drain()` callers.
///
/// A slot is reused only after the compressor has passed it, and the page
/// table points at a slot only while it holds the page's data; readers copy
/// from the slot under the page's lock.
// @unchecked: a slot's buffer and entry belong to the writer that claimed its
// sequence until it sets `ready`, then to the compressor until it advances
// `tail` past it (release/acquire on both); the rest is atomics or immutable.
final class CompressionQueue: @unchecked Sendable {
    /// Slots in the ring (a power of two).
    let capacity: Int
    private let buffers: UnsafeMutableRawPointer
    private let entries: UnsafeMutablePointer<Entry>
    /// One flag per slot, each on its own cache line: the writer sets a new slot's
    /// flag while the compressor clears an old one.
    private let readyFlags: UnsafeMutableRawPointer
    private static let readyStride = 64
    /// Next sequence number to claim, and next to compress (both only grow).
    private let head = Atomic<Int>(0)
    private let tail = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    /// Set by the compressor before it sleeps; the writer that clears it wakes it.
    private let compressorAsleep = Atomic<Bool>(false)
    /// `drain()` callers waiting for `tail`.
    private let drainers = Atomic<Int>(0)
    private let lock: UnsafeMutablePointer<pthread_mutex_t>
    private let changed: UnsafeMutablePointer<pthread_cond_t>

    /// What a writer hands over with a slot.
    struct Entry {
        /// The page the slot was written for.
        var page: Int
        /// The allocator handle of the object the write replaced, 0 for none;
        /// the compressor frees it, keeping allocator locks off the writer's path.
        var replacedObject: UInt64
    }

    /// Polling budget: each page compressed earns the compressor this much time to poll
    /// an empty ring before it sleeps, up to the cap; polling spends it. A client sending
    /// batches (even in pieces) earns more than the gaps between them cost, so the
    /// compressor stays awake and writers never pay for a futex wake-up; a trickle of
    /// single pages earns a few microseconds each and lets it sleep almost at once.
    /// Polling never takes more than about twice the time spent compressing.
    static let pollCreditPerPage: UInt64 = 6_000
    static let pollCreditMax: UInt64 = 400_000

    /// - Throws: `ENOMEM` if the system refuses the ring's memory.
    init(capacity: Int) throws(ZramError) {
        precondition(capacity > 0 && capacity & (capacity - 1) == 0, "queue capacity must be a power of two")
        var pages: UnsafeMutableRawPointer?
        if posix_memalign(&pages, pageSize, capacity * pageSize) != 0 { pages = nil }
        let allocated = (
            pages, malloc(capacity * MemoryLayout<Entry>.stride), allocateAligned(capacity * Self.readyStride),
            malloc(MemoryLayout<pthread_mutex_t>.stride), malloc(MemoryLayout<pthread_cond_t>.stride)
        )
        guard let buffers = allocated.0, let entries = allocated.1, let readyFlags = allocated.2,
            let lock = allocated.3, let changed = allocated.4
        else {
            free(allocated.0)
            free(allocated.1)
            free(allocated.2)
            free(allocated.3)
            free(allocated.4)
            throw ZramError(.outOfMemory, "cannot allocate a compression queue of \(capacity) pages")
        }
        self.capacity = capacity
        // Touched now, so no write faults the ring in (and takes mmap_lock) under swap pressure.
        buffers.initializeMemory(as: UInt8.self, repeating: 0, count: capacity * pageSize)
        self.buffers = buffers
        self.entries = entries.bindMemory(to: Entry.self, capacity: capacity)
        self.entries.initialize(repeating: Entry(page: 0, replacedObject: 0), count: capacity)
        self.readyFlags = readyFlags
        for slot in 0..<capacity {
            (readyFlags + slot * Self.readyStride).bindMemory(to: Atomic<Bool>.self, capacity: 1).initialize(to: Atomic(false))
        }
        self.lock = lock.bindMemory(to: pthread_mutex_t.self, capacity: 1)
        pthread_mutex_init(self.lock, nil)
        self.changed = changed.bindMemory(to: pthread_cond_t.self, capacity: 1)
        pthread_cond_init(self.changed, nil)
    }

    deinit {
        pthread_cond_destroy(changed)
        pthread_mutex_destroy(lock)
        free(changed)
        free(lock)
        for slot in 0..<capacity { ready(slot).deinitialize(count: 1) }
        free(readyFlags)
        free(entries)
        free(buffers)
    }

    /// The raw page in slot `slot`.
    @inline(__always)
    func buffer(_ slot: Int) -> UnsafeMutableRawPointer { buffers + slot * pageSize }

    @inline(__always)
    private func ready(_ slot: Int) -> UnsafeMutablePointer<Atomic<Bool>> {
        (readyFlags + slot * Self.readyStride).assumingMemoryBound(to: Atomic<Bool>.self)
    }

    @inline(__always)
    func slot(ofSequence sequence: Int) -> Int { sequence & (capacity - 1) }

    // MARK: Writers

    /// Claims the next slot for a writer, or nil when the ring is full (write inline then).
    @inline(__always)
    func reserve() -> Int? {
        var sequence = head.load(ordering: .relaxed)
        while !stopping.load(ordering: .relaxed) {
            // Acquiring: the compressor is done with the slot's buffer before it is reused.
            guard sequence - tail.load(ordering: .acquiring) < capacity else { return nil }
            let (won, seen) = head.weakCompareExchange(
                expected: sequence, desired: sequence + 1, ordering: .relaxed)
            if won { return sequence }
            sequence = seen
        }
        return nil
    }

    /// Hands a filled slot to the compressor. Call after the page table points at it.
    @inline(__always)
    func publish(_ sequence: Int, _ entry: Entry) {
        let slot = slot(ofSequence: sequence)
        entries[slot] = entry
        // Sequentially consistent with the compressor's sleep check: either it sees
        // this slot ready, or this sees it asleep and wakes it.
        ready(slot).pointee.store(true, ordering: .sequentiallyConsistent)
        if compressorAsleep.load(ordering: .sequentiallyConsistent),
            compressorAsleep.exchange(false, ordering: .sequentiallyConsistent)
        {
            broadcast()
        }
    }

    // MARK: The compressor

    /// The compressor's next sequence and its entry; waits until there is one.
    /// nil once `stop()` was called and every claimed slot is compressed.
    /// - Parameter pollCredit: the compressor's polling budget in nanoseconds (see
    ///   ``pollCreditPerPage``); the compressor keeps it, this earns and spends it.
    func next(pollCredit: inout UInt64) -> (sequence: Int, entry: Entry)? {
        let sequence = tail.load(ordering: .relaxed)
        let ready = ready(slot(ofSequence: sequence))
        if !ready.pointee.load(ordering: .acquiring) {
            let start = MonotonicClock.nanoseconds()
            let deadline = start + pollCredit
            var polls = 0
            while !ready.pointee.load(ordering: .acquiring) {
                polls &+= 1
                guard polls & 63 == 0 else { continue }
                let now = MonotonicClock.nanoseconds()
                guard now >= deadline else { continue }
                pollCredit = 0
                guard sleep(untilReady: ready, sequence: sequence) else { return nil }
                break
            }
            if pollCredit > 0 { pollCredit -= min(pollCredit, MonotonicClock.nanoseconds() - start) }
        }
        pollCredit = min(Self.pollCreditMax, pollCredit + Self.pollCreditPerPage)
        return (sequence, entries[slot(ofSequence: sequence)])
    }

    /// The entry of `sequence` if its writer has published it, for the compressor to look
    /// ahead of its `tail`; `sequence` must lie within `capacity` of it.
    @inline(__always)
    func peek(_ sequence: Int) -> Entry? {
        let slot = slot(ofSequence: sequence)
        guard ready(slot).pointee.load(ordering: .acquiring) else { return nil }
        return entries[slot]
    }

    /// Sleeps until `ready` is set. false when stopping and nothing more was claimed.
    private func sleep(untilReady ready: UnsafeMutablePointer<Atomic<Bool>>, sequence: Int) -> Bool {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        while true {
            compressorAsleep.store(true, ordering: .sequentiallyConsistent)
            if ready.pointee.load(ordering: .sequentiallyConsistent) { break }
            if stopping.load(ordering: .sequentiallyConsistent) && head.load(ordering: .sequentiallyConsistent) == sequence {
                compressorAsleep.store(false, ordering: .relaxed)
                return false
            }
            pthread_cond_wait(changed, lock)
        }
        compressorAsleep.store(false, ordering: .relaxed)
        return true
    }

    /// Frees the compressor's current slot for reuse.
    func retire(_ sequence: Int) {
        ready(slot(ofSequence: sequence)).pointee.store(false, ordering: .relaxed)
        // Sequentially consistent with `drain()`'s check of `drainers` and `tail`.
        tail.store(sequence + 1, ordering: .sequentiallyConsistent)
        if drainers.load(ordering: .sequentiallyConsistent) > 0 { broadcast() }
    }

    // MARK: Control

    /// Waits until every page queued before this call has been compressed.
    func drain() {
        let target = head.load(ordering: .acquiring)
        guard tail.load(ordering: .acquiring) < target else { return }
        pthread_mutex_lock(lock)
        drainers.add(1, ordering: .sequentiallyConsistent)
        while tail.load(ordering: .sequentiallyConsistent) < target { pthread_cond_wait(changed, lock) }
        drainers.subtract(1, ordering: .relaxed)
        pthread_mutex_unlock(lock)
    }

    /// Whether ``stop()`` was called.
    var isStopping: Bool { stopping.load(ordering: .relaxed) }

    /// Refuses new pages and wakes the compressor, which finishes what is queued.
    /// Call when no write is in flight (the device's lifecycle lock held exclusively).
    func stop() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        broadcast()
    }

    private func broadcast() {
        pthread_mutex_lock(lock)
        pthread_cond_broadcast(changed)
        pthread_mutex_unlock(lock)
    }
}
