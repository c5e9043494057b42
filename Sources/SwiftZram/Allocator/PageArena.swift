#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// The pool's virtual memory: 64 MiB chunks reserved lazily, carved into
/// 32 KiB slots (8 pages, the longest zspage chain), one per zspage.
///
/// An object never straddles two mappings, so readers get one plain
/// pointer. Chunks stay reserved (address space only, no memory) until the
/// arena is destroyed.
///
/// Without a reserve (``ReservePolicy``), a zspage's pages fault in as objects
/// reach them and a released slot's pages go back to the OS at once, on the
/// calling thread. With one, the request path neither calls the OS nor faults
/// in steady state: a new zspage takes a slot whose pages are already resident
/// (and locked, under `mlockall(MCL_ONFAULT)`), and a freed zspage's slot goes
/// back to that reserve as it is. The maintenance pass (``maintain()``, run by
/// the ``ReserveMaintainer`` thread) refills it, gives back what is above its
/// high water mark, and sorts out slots that were never fully faulted in.
/// Every `mmap`, `madvise`, `mlock2` and first touch then happens there, so a
/// request thread never waits for the memory-map lock behind a thread stuck
/// in reclaim. If the reserve runs dry, the request path falls back to a
/// fresh slot that faults in as it fills (counted in
/// ``ArenaCounters/unreservedSlots``).
///
/// The lock guards only the slot lists and is never held across a system
/// call or a page fault (except by the diagnostic ``residentPages()``).
struct PageArena: ~Copyable, Sendable {
    /// Bytes of one zspage slot (8 pages).
    static let slotBytes = SizeClassTable.maximumPagesPerZspage * SizeClassTable.pageSize
    /// Bytes reserved per mmap.
    static let chunkBytes = 64 << 20
    static let slotsPerChunk = chunkBytes / slotBytes

    private let state: Mutex<ArenaState>
    /// How locked pages are discarded; see ``OSMemory/discard(_:_:mode:)``.
    private let discardMode = Atomic<OSMemory.DiscardMode>(.plain)
    /// Bytes this arena has mapped and not yet unmapped; outlives the arena.
    let ledger: MappingLedger
    let counters = ArenaCounters()
    /// nil: no reserve.
    let policy: ReservePolicy?
    /// Wakes the maintenance thread; nil without a reserve.
    let signal: ReserveSignal?

    init(reserve policy: ReservePolicy? = nil) {
        let ledger = MappingLedger()
        self.ledger = ledger
        self.policy = policy
        signal = policy == nil ? nil : ReserveSignal()
        state = Mutex(ArenaState(ledger: ledger))
    }

    /// A slot for a zspage of `pages` pages.
    ///
    /// - Returns: the slot's address and how many of its first pages are resident
    ///   already (`pages` when it came from the reserve, else 0: its pages are
    ///   zeros that fault in on first touch), or nil if the OS refused memory.
    /// - Complexity: O(1) (amortised; one `mmap` per 2048 fresh slots).
    func acquireSlot(pages: Int) -> (address: UnsafeMutableRawPointer, residentPages: Int)? {
        if let policy, let signal {
            let (slot, refill) = state.withLock { $0.takeReady(pages: pages, lowPages: policy.lowPages) }
            if refill { signal.request() }
            if slot != 0 { return (UnsafeMutableRawPointer(bitPattern: slot).unsafelyUnwrapped, pages) }
            counters.unreservedSlots.add(1, ordering: .relaxed)
        }
        guard let slot = freshSlot(onRequestPath: true) else { return nil }
        return (slot, 0)
    }

    /// Makes `slot` reusable. Its first `residentPages` pages are resident, and the
    /// zspage it held was `pages` long.
    ///
    /// With a reserve, a fully resident slot joins the reserve (its stale bytes are
    /// overwritten as objects are stored) and others wait for maintenance: no
    /// system call. Without one, its pages go back to the OS now.
    func releaseSlot(_ slot: UnsafeMutableRawPointer, pages: Int, residentPages: Int) {
        let address = UInt(bitPattern: slot)
        if let policy, let signal {
            switch state.withLock({ $0.putBack(address, pages: pages, residentPages: residentPages, highPages: policy.highPages) }) {
            case .kept: return
            case .keptNeedsMaintenance:
                signal.request()
                return
            case .noRoom: break  // the lists could not grow: give the pages back here
            }
        }
        if residentPages > 0 {
            counters.requestPathDiscards.add(1, ordering: .relaxed)
            OSMemory.discard(slot, residentPages * SizeClassTable.pageSize, mode: discardMode)
        }
        state.withLock { $0.pushFree(address) }
    }

    /// Makes a retired zspage's slot reusable.
    func release(_ zspage: ReleasedZspage) {
        releaseSlot(zspage.slotAddress, pages: zspage.pages, residentPages: zspage.residentPages)
    }

    /// A never-used or discarded slot (all its pages non-resident zeros); maps a new
    /// chunk, outside the lock, when none is left.
    private func freshSlot(onRequestPath: Bool) -> UnsafeMutableRawPointer? {
        while true {
            let slot = state.withLock { $0.takeFresh() }
            if slot != 0 { return UnsafeMutableRawPointer(bitPattern: slot) }
            guard let chunk = OSMemory.reserve(Self.chunkBytes) else { return nil }
            if onRequestPath {
                counters.requestPathMappings.add(1, ordering: .relaxed)
            } else {
                counters.maintenanceMappings.add(1, ordering: .relaxed)
            }
            switch state.withLock({ $0.addChunk(UInt(bitPattern: chunk)) }) {
            case .added: ledger.mapped(Self.chunkBytes)
            case .notNeeded: OSMemory.unreserve(chunk, Self.chunkBytes)  // another thread added one meanwhile
            case .noRoom:
                OSMemory.unreserve(chunk, Self.chunkBytes)
                return nil
            }
        }
    }

    /// Bytes of address space reserved (not memory used).
    var reservedBytes: Int { state.withLock { $0.chunkCount } * Self.chunkBytes }

    /// Resident pages held in the reserve and waiting for maintenance: memory the
    /// arena holds that no zspage counts.
    var reservePages: Int { state.withLock { $0.reservePages } }

    /// Reserve pages of zspage length `pages`.
    func readyPages(length pages: Int) -> Int { state.withLock { $0.readyCount(pages: pages) } * pages }

    /// Pages of this arena's mappings resident in memory now (`mincore`): what the
    /// arena costs the process, measured on its own address ranges only.
    /// - Returns: nil if the system refuses the probe's buffer or the probe fails.
    func residentPages() -> Int? {
        let pagesPerChunk = Self.chunkBytes / SizeClassTable.pageSize
        guard let vector = malloc(pagesPerChunk)?.bindMemory(to: UInt8.self, capacity: pagesPerChunk) else { return nil }
        defer { free(vector) }
        return state.withLock { state -> Int? in
            var resident = 0
            for index in 0..<state.chunkCount {
                let base = UnsafeMutableRawPointer(bitPattern: state.chunk(index))
                guard mincore(base, Self.chunkBytes, vector) == 0 else { return nil }
                for page in 0..<pagesPerChunk where vector[page] & 1 != 0 { resident += 1 }
            }
            return resident
        }
    }

    // MARK: Maintenance

    /// What one ``maintain()`` pass did, in pages.
    struct MaintenanceWork: Equatable {
        var populated = 0
        var discarded = 0
    }

    /// One maintenance pass: completes or gives back the slots waiting for it, then,
    /// per zspage length, gives back what is above the high water mark and refills
    /// what is below the low one (lengths in use only), both to the target.
    /// Takes the lock only between system calls. A no-op without a reserve.
    @discardableResult
    func maintain() -> MaintenanceWork {
        guard let policy else { return MaintenanceWork() }
        var work = MaintenanceWork()
        while let waiting = state.withLock({ $0.popWaiting(highPages: policy.highPages) }) {
            if waiting.keep {
                OSMemory.populate(waiting.slot, from: waiting.residentPages, pages: waiting.pages)
                work.populated += waiting.pages - waiting.residentPages
                pushReadyOrGiveBack(waiting.slot, pages: waiting.pages, work: &work)
            } else {
                giveBack(waiting.slot, residentPages: waiting.residentPages, work: &work)
            }
        }
        for pages in 1...SizeClassTable.maximumPagesPerZspage {
            let excess = state.withLock { $0.excessSlots(pages: pages, policy: policy) }
            for _ in 0..<excess {
                let slot = state.withLock { $0.popReady(pages: pages) }
                guard slot != 0 else { break }
                giveBack(UnsafeMutableRawPointer(bitPattern: slot).unsafelyUnwrapped, residentPages: pages, work: &work)
            }
            let deficit = state.withLock { $0.missingSlots(pages: pages, policy: policy) }
            for _ in 0..<deficit {
                guard let slot = freshSlot(onRequestPath: false) else { break }
                OSMemory.populate(slot, pages: pages)
                work.populated += pages
                pushReadyOrGiveBack(slot, pages: pages, work: &work)
            }
        }
        counters.maintenancePopulatedPages.add(work.populated, ordering: .relaxed)
        counters.maintenanceDiscardedPages.add(work.discarded, ordering: .relaxed)
        return work
    }

    private func pushReadyOrGiveBack(_ slot: UnsafeMutableRawPointer, pages: Int, work: inout MaintenanceWork) {
        let pushed = state.withLock { $0.pushReady(UInt(bitPattern: slot), pages: pages) }
        if !pushed { giveBack(slot, residentPages: pages, work: &work) }
    }

    private func giveBack(_ slot: UnsafeMutableRawPointer, residentPages: Int, work: inout MaintenanceWork) {
        if residentPages > 0 {
            OSMemory.discard(slot, residentPages * SizeClassTable.pageSize, mode: discardMode)
            work.discarded += residentPages
        }
        state.withLock { $0.pushFree(UInt(bitPattern: slot)) }
    }
}

/// The bytes an arena has mapped, kept in an object of its own so that a test can
/// still read it after the arena (and its pool) are gone.
final class MappingLedger: Sendable {
    private let bytes = Atomic<Int>(0)

    /// Bytes mapped and not yet unmapped.
    var mappedBytes: Int { bytes.load(ordering: .relaxed) }

    func mapped(_ count: Int) { bytes.add(count, ordering: .relaxed) }
    func unmapped(_ count: Int) { bytes.subtract(count, ordering: .relaxed) }
}
