#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// The compression queue's consumer: compresses queued pages in order and
/// puts them in the allocator, as an inline write would have.
struct CompressorWorker: Sendable {
    let table: PageTable
    let encoder: PageEncoder
    let compressors: CompressorPool
    let queue: CompressionQueue
    /// Stores to fail as if the system refused memory (tests); nil in production.
    let refusals: MemoryRefusals?

    /// Tries a page gets when the system refuses memory for it, sleeping 1, 2, 4... ms
    /// between them (about 0.1 s in all), before the page is given up as lost.
    static let memoryRetries = 7

    private var counters: DeviceCounters { encoder.counters }

    /// The compressor thread's name in `top -H`, `ps -L` and `perf`.
    static let threadName = "zram-compress"

    /// Runs until the queue is stopped and empty.
    func run() {
        var pollCredit: UInt64 = 0
        while let (sequence, entry) = queue.next(pollCredit: &pollCredit) {
            lookAhead(after: sequence)
            compress(page: entry.page, slot: queue.slot(ofSequence: sequence))
            if entry.replacedObject != 0 { encoder.pool.free(ObjectHandle(rawValue: entry.replacedObject)) }
            queue.retire(sequence)
        }
    }

    /// Starts loading what freeing the next pages' replaced objects will miss on, one
    /// stage per page compressed, as the read-ahead does: two pages ahead the handle
    /// entry, one ahead the zspage descriptor and owner entry. After random overwrites
    /// those objects lie anywhere in the pool, and each free would otherwise wait for
    /// its lines in turn. The queue owns a replaced object until it is freed here, so
    /// its handle stays live.
    @inline(__always)
    private func lookAhead(after sequence: Int) {
        if let entry = queue.peek(sequence + 2), entry.replacedObject != 0 {
            encoder.pool.prefetchLocation(of: ObjectHandle(rawValue: entry.replacedObject))
        }
        if let entry = queue.peek(sequence + 1), entry.replacedObject != 0 {
            encoder.pool.prefetchRelease(of: ObjectHandle(rawValue: entry.replacedObject))
        }
    }

    /// Replaces the queued copy of `page` by its stored form, unless the page was
    /// overwritten or discarded since (then the slot is simply passed).
    ///
    /// When the system refuses memory the page stays queued (and readable) while
    /// the compressor retries a few times; after that, or at once when the queue
    /// is stopping, the page is marked lost: it was acknowledged, so it must not
    /// read back as zeros, and the ring must move on or reset would hang.
    private func compress(page: Int, slot: Int) {
        guard let entry = table.existingSlot(page) else { return }
        var attempt = 0
        while true {
            let state = entry.lock()
            guard state.isQueued, entry.pointee.payload == UInt64(slot) else {
                entry.unlock(setting: state)
                return
            }
            let raw = UnsafeRawBufferPointer(start: queue.buffer(slot), count: pageSize)
            let refused = refusals?.take() ?? false
            // The write was accepted when it was queued: store it whatever mem_limit says now.
            let encoded = refused ? nil : compressors.withStream { stream in try? encoder.encode(raw, stream: stream, limit: 0) }
            if let encoded {
                entry.pointee.payload = encoded.payload
                // The page keeps what its write and any `idle` since gave it: its idle mark and access time.
                let kept = state.rawValue & (PageState.idleBit | PageState.accessTimeMask)
                entry.unlock(setting: PageState(rawValue: encoded.state.rawValue | kept))
                counters.record(encoded.state)
                counters.forget(state)
                return
            }
            attempt += 1
            if attempt >= Self.memoryRetries || queue.isStopping {
                entry.pointee.payload = 0
                entry.unlock(setting: .lost)
                counters.forget(state)
                counters.failedWrites.wrappingAdd(1, ordering: .relaxed)
                return
            }
            entry.unlock(setting: state)
            usleep(1000 << UInt32(attempt - 1))
        }
    }
}

/// Makes the compressor's next stores fail as if the system refused memory:
/// the only way to reach its out-of-memory path in a test.
final class MemoryRefusals: Sendable {
    private let remaining: Atomic<Int>

    init(_ count: Int) { remaining = Atomic(count) }

    /// Whether to refuse this store (uses one refusal).
    func take() -> Bool {
        var left = remaining.load(ordering: .relaxed)
        while left > 0 {
            let (won, seen) = remaining.compareExchange(expected: left, desired: left - 1, ordering: .relaxed)
            if won { return true }
            left = seen
        }
        return false
    }

    func set(_ count: Int) { remaining.store(count, ordering: .relaxed) }
}
