import Synchronization

/// Writeback at `mem_limit` (`writeback_auto 1`, or `tiering_enable 1`; both off by
/// default, and then the device fails the write as the kernel's zram does). When a
/// write would take `mem_used_total` past the limit, the writer writes the coldest
/// pages back (idle pages first, then the oldest access time; ``ColdPageQueue``),
/// compacts, and tries again, within `writeback_limit`. This is what zswap does when
/// its pool is full, and it keeps zram from pinning cold pages in RAM while it
/// refuses warm ones.
///
/// The writer holds no page lock and no compression stream meanwhile (a partial-page
/// write gives its page's lock back first), so no writer waits on backing I/O for a
/// lock of its own. Writing back allocates nothing in the pool, so this never recurses.
/// It takes the device's post-processing flag like a manual writeback, waiting only
/// briefly for a running writeback, recompression or policy batch: their holder may
/// itself wait for the lifecycle lock behind a pending reset, which waits for this writer.
final class MemoryRelief: Sendable {
    /// The device owns the store that owns this; it outlives both.
    unowned let device: ZramDevice
    /// The coldest pages found by the last scan, and the batch buffer (allocated at the
    /// first relief, so a device that never reaches mem_limit pays nothing). One writer
    /// at a time: the post-processing flag already ensures it; the lock makes it checkable.
    private let state = Mutex(ReliefState())

    /// Pages one relief writes back.
    static let batchPages = 64
    /// Sleeps (of 1 µs growing to 200 µs each) a writer waits for the post-processing flag.
    static let flagWaitSleeps = 24

    private struct ReliefState: ~Copyable {
        var queue = ColdPageQueue()
        var batch: WritebackBatch?
    }

    /// What one ``makeRoom(in:)`` came to.
    enum Outcome {
        /// Pages were written back: storing again may succeed.
        case madeRoom
        /// Another post-processor held the device past a short wait; it may have freed memory.
        case busy
        /// Nothing could be written back (limit used up, store full, no object in RAM).
        case none
    }

    init(device: ZramDevice) { self.device = device }

    /// Whether a write at mem_limit makes room (`writeback_auto` or `tiering_enable`).
    var isEnabled: Bool {
        device.writebackControls.autoEnabled.load(ordering: .relaxed) || device.tiering.isEnabled
    }

    /// Writes back one batch of the coldest pages of `store` and compacts. Runs on the
    /// writer's thread under the lifecycle lock held shared.
    func makeRoom(in store: ZramStore) -> Outcome {
        guard store.backing != nil else { return .none }
        guard takeFlagBriefly() else { return .busy }
        defer { device.postProcessing.store(false, ordering: .releasing) }
        let controls = device.writebackControls
        let written = state.withLock { state -> Int in
            if state.batch == nil { state.batch = try? WritebackBatch(capacity: Self.batchPages) }
            guard let batch = state.batch else { return 0 }
            return store.writeBackColdBatch(queue: &state.queue, accessedBefore: nil, batch: batch, controls: controls).written
        }
        controls.pagesMovedAutomatically.wrappingAdd(written, ordering: .relaxed)
        return written > 0 ? .madeRoom : .none
    }

    private func takeFlagBriefly() -> Bool {
        var backoff = Backoff()
        while device.postProcessing.exchange(true, ordering: .acquiring) {
            guard backoff.sleeps < Self.flagWaitSleeps else { return false }
            backoff.pause()
        }
        return true
    }
}

extension ZramStore {
    /// Rounds of writing back one write tries before it fails at mem_limit.
    static let reliefsPerWrite = 8
    /// Times one write finds the device busy with another post-processor before it fails.
    static let busyReliefsPerWrite = 64

    /// Runs `attempt` again after each round of making room while it fails at mem_limit
    /// (``MemoryRelief``). Rethrows `error` at once for another error, or when relief is
    /// off or cannot write anything back. The caller holds no page lock and no stream.
    @inline(never)
    func retryMakingRoom<R>(after error: ZramError, _ attempt: () throws(ZramError) -> R) throws(ZramError) -> R {
        guard error.kind == .memoryLimitReached, let relief, relief.isEnabled else { throw error }
        var last = error
        var rounds = 0
        var busy = 0
        while rounds < Self.reliefsPerWrite && busy < Self.busyReliefsPerWrite {
            switch relief.makeRoom(in: self) {
            case .madeRoom: rounds += 1
            case .busy: busy += 1
            case .none: throw last
            }
            do throws(ZramError) {
                let result = try attempt()
                relief.device.tiering.savedWrites.add(1, ordering: .relaxed)
                return result
            } catch {
                guard error.kind == .memoryLimitReached else { throw error }
                last = error
            }
        }
        throw last
    }
}
