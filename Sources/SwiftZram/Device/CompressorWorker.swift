#if canImport(Glibc)
import Glibc
#endif

/// The compression queue's consumer: compresses queued pages in order and
/// puts them in the allocator, as an inline write would have.
struct CompressorWorker: Sendable {
    let table: PageTable
    let encoder: PageEncoder
    let compressors: CompressorPool
    let queue: CompressionQueue

    private var counters: DeviceCounters { encoder.counters }

    /// The compressor thread's name in `top -H`, `ps -L` and `perf`.
    static let threadName = "zram-compress"

    /// Runs until the queue is stopped and empty.
    func run() {
        Self.nameThread()
        var pollCredit: UInt64 = 0
        while let (sequence, entry) = queue.next(pollCredit: &pollCredit) {
            compress(page: entry.page, slot: queue.slot(ofSequence: sequence))
            if entry.replacedObject != 0 { encoder.pool.free(ObjectHandle(rawValue: entry.replacedObject)) }
            queue.retire(sequence)
        }
    }

    /// Linux names threads through /proc (pthread_setname_np is not visible to Swift).
    private static func nameThread() {
        let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = threadName.withCString { write(fd, $0, strlen($0)) }
        close(fd)
    }

    /// Replaces the queued copy of `page` by its stored form, unless the page was
    /// overwritten or discarded since (then the slot is simply passed).
    private func compress(page: Int, slot: Int) {
        guard let entry = table.existingSlot(page) else { return }
        while true {
            let state = entry.lock()
            guard state.isQueued, entry.pointee.payload == UInt64(slot) else {
                entry.unlock(setting: state)
                return
            }
            let raw = UnsafeRawBufferPointer(start: queue.buffer(slot), count: pageSize)
            // The write was accepted when it was queued: store it whatever mem_limit says now.
            let encoded = compressors.withStream { stream in try? encoder.encode(raw, stream: stream, limit: 0) }
            if let encoded {
                entry.pointee.payload = encoded.payload
                let idle = state.rawValue & PageState.idleBit
                entry.unlock(setting: PageState(rawValue: encoded.state.rawValue | idle))
                counters.record(encoded.state)
                counters.forget(state)
                return
            }
            // Only the OS refusing memory gets here: keep the page queued and retry.
            entry.unlock(setting: state)
            usleep(1000)
        }
    }
}
