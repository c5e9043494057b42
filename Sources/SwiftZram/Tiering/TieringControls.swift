import Synchronization

/// A device's automatic-tiering knobs and counters (the `tiering_*` attributes).
/// They live as long as the device: reset keeps them, as it keeps writeback_limit.
///
/// Off by default: then no page is written back or recompressed unless asked,
/// and a write past mem_limit fails as in the kernel.
final class TieringControls: Sendable {
    /// tiering_enable.
    let enabled = Atomic<Bool>(false)
    /// tiering_idle_age: seconds without access after which a pass marks a page idle
    /// (and recompresses it, when recomp_algorithm is set).
    let idleAge = Atomic<UInt64>(TieringControls.defaultIdleAge)
    /// tiering_writeback_age: seconds without access after which a pass writes a page
    /// back whatever memory is used; 0 writes back only above the watermark or under pressure.
    let writebackAge = Atomic<UInt64>(TieringControls.defaultWritebackAge)
    /// tiering_high_watermark: bytes of mem_used_total a pass brings usage under; 0 for none.
    let highWatermark = Atomic<UInt64>(0)
    /// tiering_interval: seconds between the policy thread's passes.
    let interval = Atomic<UInt64>(TieringControls.defaultInterval)
    /// tiering_psi_threshold: percent of `some avg10` in /proc/pressure/memory above
    /// which a pass acts as if over the watermark; 0 ignores pressure.
    let psiThreshold = Atomic<UInt64>(0)
    /// Where host memory pressure is read (a fixed value in tests).
    let pressure = Mutex<any MemoryPressureReader>(ProcMemoryPressure())

    // tiering_stat.
    let passes = Atomic<Int>(0)
    let policyWrittenBack = Atomic<Int>(0)
    let policyRecompressed = Atomic<Int>(0)
    /// Writes that reached mem_limit and were stored after ``MemoryRelief`` made room
    /// (pages it moved count in WritebackControls' pagesMovedAutomatically).
    let savedWrites = Atomic<Int>(0)

    static let defaultIdleAge: UInt64 = 300
    static let defaultWritebackAge: UInt64 = 1800
    static let defaultInterval: UInt64 = 60

    var isEnabled: Bool { enabled.load(ordering: .relaxed) }

    /// tiering_stat now; `movedAtLimit` is what writes at mem_limit wrote back.
    func statistics(movedAtLimit: Int) -> TieringStatistics {
        TieringStatistics(
            passes: UInt64(passes.load(ordering: .relaxed)),
            policyWrittenBack: UInt64(policyWrittenBack.load(ordering: .relaxed)),
            policyRecompressed: UInt64(policyRecompressed.load(ordering: .relaxed)),
            reclaimWrittenBack: UInt64(movedAtLimit),
            savedWrites: UInt64(savedWrites.load(ordering: .relaxed)))
    }
}

/// `tiering_stat`: what automatic tiering has done since the device was created.
public struct TieringStatistics: Sendable, Hashable, Codable {
    /// Policy passes run.
    public var passes: UInt64 = 0
    /// Pages the policy wrote back (cold pages, and pages over the watermark or under pressure).
    public var policyWrittenBack: UInt64 = 0
    /// Pages the policy's recompression stored smaller.
    public var policyRecompressed: UInt64 = 0
    /// Pages written back by writes that reached mem_limit, to make room for themselves
    /// (with `writeback_auto` or `tiering_enable`).
    public var reclaimWrittenBack: UInt64 = 0
    /// Writes that reached mem_limit and were stored after making room, instead of failing.
    public var savedWrites: UInt64 = 0

    public init(
        passes: UInt64 = 0, policyWrittenBack: UInt64 = 0, policyRecompressed: UInt64 = 0,
        reclaimWrittenBack: UInt64 = 0, savedWrites: UInt64 = 0
    ) {
        self.passes = passes
        self.policyWrittenBack = policyWrittenBack
        self.policyRecompressed = policyRecompressed
        self.reclaimWrittenBack = reclaimWrittenBack
        self.savedWrites = savedWrites
    }

    public var fields: [UInt64] { [passes, policyWrittenBack, policyRecompressed, reclaimWrittenBack, savedWrites] }

    /// The field names, in the order `tiering_stat` prints them.
    public static let fieldNames = ["passes", "policy_writeback", "policy_recompress", "reclaim_writeback", "saved_writes"]

    /// The line `tiering_stat` prints.
    public var kernelText: String { kernelStatLine(fields) }
}
