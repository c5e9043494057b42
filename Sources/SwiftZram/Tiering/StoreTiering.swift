import Synchronization

/// An initialised device's side of automatic tiering, created with its `ZramStore`
/// when it has a backing store: what a write that reaches mem_limit calls to make room.
final class StoreTiering: Sendable {
    let controls: TieringControls
    /// Writes a batch of cold pages back and compacts. Called with no page lock and no stream held.
    let makeRoom: @Sendable (ZramStore) -> RoomOutcome
    /// The writes' reclaim state: one reclaimer at a time (the device's post-processing
    /// flag already ensures it; the lock makes it checkable).
    let reclaim = Mutex(ReclaimState())

    /// What one call of ``makeRoom`` came to.
    enum RoomOutcome {
        /// Pages were written back: storing again may succeed.
        case madeRoom
        /// Another writeback, recompression or reclaim held the device past a short wait;
        /// it may have freed memory.
        case busy
        /// Nothing could be written back.
        case none
    }

    init(controls: TieringControls, makeRoom: @escaping @Sendable (ZramStore) -> RoomOutcome) {
        self.controls = controls
        self.makeRoom = makeRoom
    }

    /// Pages one reclaim writes back.
    static let reclaimBatchPages = 64

    struct ReclaimState: ~Copyable {
        var queue = ColdPageQueue()
        /// Allocated at the first reclaim, so a device that never reaches mem_limit pays nothing.
        var batch: WritebackBatch?
    }
}

/// Writes that reach mem_limit with tiering on: instead of failing, they write the
/// coldest pages back, compact, and store again, a bounded number of rounds. A round
/// that cannot write anything back (writeback_limit used up, backing store full,
/// nothing in RAM but same-filled pages, another writeback holding the device) ends
/// the write with the error it would have had without tiering.
extension ZramStore {
    /// Rounds of making room one write tries.
    static let roomRounds = 8
    /// Times one write finds the device busy with another post-processor before it gives up.
    static let busyRounds = 64

    /// Runs `attempt` again after each round of making room while it fails at
    /// mem_limit. Rethrows `error` at once when it is another error or tiering is off.
    /// The caller holds no page lock and no stream.
    @inline(never)
    func retryMakingRoom<R>(after error: ZramError, _ attempt: () throws(ZramError) -> R) throws(ZramError) -> R {
        guard error.kind == .memoryLimitReached, let tiering, tiering.controls.isEnabled else { throw error }
        var last = error
        var rounds = 0
        var busy = 0
        while rounds < Self.roomRounds && busy < Self.busyRounds {
            switch tiering.makeRoom(self) {
            case .madeRoom: rounds += 1
            case .busy: busy += 1
            case .none: throw last
            }
            do throws(ZramError) {
                let result = try attempt()
                tiering.controls.savedWrites.add(1, ordering: .relaxed)
                return result
            } catch {
                guard error.kind == .memoryLimitReached else { throw error }
                last = error
            }
        }
        throw last
    }
}
