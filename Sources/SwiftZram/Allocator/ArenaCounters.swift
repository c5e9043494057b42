import Synchronization

/// What a ``PageArena`` asked of the OS, split by who asked: the request path
/// (store, free and compaction callers) or the reserve's maintenance. Tests
/// read these to prove that the request path made no memory system call.
final class ArenaCounters: Sendable {
    /// `mmap`s of a new chunk made on the request path.
    let requestPathMappings = Atomic<Int>(0)
    /// Discards (`madvise`, and `munlock`/`mlock2` when the pages are locked) made on the request path.
    let requestPathDiscards = Atomic<Int>(0)
    /// Zspages started on slots whose pages were not faulted in: each of their
    /// pages faults on the request path when an object first reaches it.
    let unreservedSlots = Atomic<Int>(0)
    /// `mmap`s of a new chunk made by maintenance.
    let maintenanceMappings = Atomic<Int>(0)
    /// Pages maintenance faulted in (refills and completed slots).
    let maintenancePopulatedPages = Atomic<Int>(0)
    /// Pages maintenance gave back to the OS.
    let maintenanceDiscardedPages = Atomic<Int>(0)

    /// The request path's memory system calls so far (mappings and discards).
    var requestPathSystemCalls: Int {
        requestPathMappings.load(ordering: .relaxed) + requestPathDiscards.load(ordering: .relaxed)
    }
}
