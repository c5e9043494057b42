/// The arena's lock-protected lists: chunk bases, fresh slots, and the
/// reserve (fully resident slots by zspage length, and partly resident slots
/// waiting for maintenance). Nothing here calls the OS except `deinit`.
struct ArenaState: ~Copyable {
    private let ledger: MappingLedger
    private var chunks = GrowableStack()
    /// Slots whose pages are all non-resident zeros (discarded).
    private var freeSlots = GrowableStack()
    /// Next never-used slot of the newest chunk, and the chunk's end.
    private var bumpNext: UInt = 0
    private var bumpEnd: UInt = 0
    /// Fully resident slots, by zspage length (index: pages − 1).
    private var ready = InlineArray<8, GrowableStack> { _ in GrowableStack() }
    /// Slots released partly resident: address | resident pages | (length − 1) << 4
    /// (slots are page-aligned, so the low 12 bits are free).
    private var waiting = GrowableStack()
    /// Resident pages of the slots in `waiting`.
    private var waitingPages = 0
    /// Bit `length − 1` is set once a zspage of that length was asked of the reserve.
    private var lengthsInUse: UInt8 = 0

    init(ledger: MappingLedger) {
        precondition(SizeClassTable.maximumPagesPerZspage == 8, "the reserve has one list per zspage length 1...8")
        self.ledger = ledger
    }

    var chunkCount: Int { chunks.count }

    /// The base address of chunk `index`.
    func chunk(_ index: Int) -> UInt { chunks[index] }

    var reservePages: Int {
        var pages = waitingPages
        for index in 0..<8 { pages += ready[index].count * (index + 1) }
        return pages
    }

    func readyCount(pages: Int) -> Int { ready[pages - 1].count }

    // MARK: Request path

    /// A reserve slot of `pages` pages, or 0 if there is none; and whether the
    /// reserve of that length is now below `lowPages`.
    mutating func takeReady(pages: Int, lowPages: Int) -> (slot: UInt, refill: Bool) {
        lengthsInUse |= 1 << UInt8(pages - 1)
        let slot = ready[pages - 1].pop() ?? 0
        return (slot, ready[pages - 1].count * pages < lowPages)
    }

    enum PutBack { case kept, keptNeedsMaintenance, noRoom }

    /// Takes back a released slot without touching its pages.
    mutating func putBack(_ slot: UInt, pages: Int, residentPages: Int, highPages: Int) -> PutBack {
        if residentPages == pages {
            guard ready[pages - 1].push(slot) else { return .noRoom }
            return ready[pages - 1].count * pages > highPages ? .keptNeedsMaintenance : .kept
        }
        if residentPages == 0 {
            pushFree(slot)
            return .kept
        }
        guard waiting.push(slot | UInt(residentPages) | UInt(pages - 1) << 4) else { return .noRoom }
        waitingPages += residentPages
        return .keptNeedsMaintenance
    }

    /// A slot from the free list or the newest chunk, or 0 if a chunk must be mapped.
    mutating func takeFresh() -> UInt {
        if let slot = freeSlots.pop() { return slot }
        guard bumpNext != bumpEnd else { return 0 }
        defer { bumpNext += UInt(PageArena.slotBytes) }
        return bumpNext
    }

    enum ChunkOutcome { case added, notNeeded, noRoom }

    /// Adds a chunk mapped outside the lock, unless another thread's chunk or a freed
    /// slot arrived meanwhile.
    mutating func addChunk(_ base: UInt) -> ChunkOutcome {
        guard freeSlots.count == 0, bumpNext == bumpEnd else { return .notNeeded }
        guard chunks.push(base) else { return .noRoom }
        bumpNext = base
        bumpEnd = base + UInt(PageArena.chunkBytes)
        return .added
    }

    mutating func pushFree(_ slot: UInt) {
        // If even this tiny list cannot grow the slot is simply never reused
        // (its pages were already returned).
        _ = freeSlots.push(slot)
    }

    // MARK: Maintenance

    /// The next slot waiting for maintenance, and whether to complete it into the
    /// reserve (its length is in use and below `highPages`) rather than give it back.
    mutating func popWaiting(highPages: Int) -> (slot: UnsafeMutableRawPointer, pages: Int, residentPages: Int, keep: Bool)? {
        guard let entry = waiting.pop() else { return nil }
        let slot = entry & ~UInt(SizeClassTable.pageSize - 1)
        let resident = Int(entry & 0xF)
        let pages = Int(entry >> 4 & 0xF) + 1
        waitingPages -= resident
        let keep = lengthsInUse & 1 << UInt8(pages - 1) != 0 && ready[pages - 1].count * pages < highPages
        return (UnsafeMutableRawPointer(bitPattern: slot).unsafelyUnwrapped, pages, resident, keep)
    }

    /// Reserve slots of length `pages` to give back: those above the target, once
    /// the reserve is above the high water mark.
    func excessSlots(pages: Int, policy: ReservePolicy) -> Int {
        let count = ready[pages - 1].count
        guard count * pages > policy.highPages else { return 0 }
        return count - policy.targetPages / pages
    }

    /// Reserve slots of length `pages` to add: up to the target, once a length in
    /// use is below the low water mark.
    func missingSlots(pages: Int, policy: ReservePolicy) -> Int {
        let count = ready[pages - 1].count
        guard lengthsInUse & 1 << UInt8(pages - 1) != 0, count * pages < policy.lowPages else { return 0 }
        return (policy.targetPages + pages - 1) / pages - count
    }

    mutating func popReady(pages: Int) -> UInt { ready[pages - 1].pop() ?? 0 }

    mutating func pushReady(_ slot: UInt, pages: Int) -> Bool { ready[pages - 1].push(slot) }

    deinit {
        for index in 0..<chunks.count {
            OSMemory.unreserve(UnsafeMutableRawPointer(bitPattern: chunks[index]).unsafelyUnwrapped, PageArena.chunkBytes)
            ledger.unmapped(PageArena.chunkBytes)
        }
    }
}
