#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// The pool's virtual memory: 64 MiB chunks reserved lazily, carved into
/// 32 KiB slots (8 pages, the longest zspage chain), one per zspage.
///
/// An object never straddles two mappings, so readers get one plain
/// pointer. Only the pages a zspage touches become resident; a released
/// slot's pages go back to the OS at once. Chunks stay reserved (address
/// space only, no memory) until the arena is destroyed.
///
/// The lock guards only the slot lists: it is taken when a zspage is
/// created or freed, never on the store/read path otherwise.
struct PageArena: ~Copyable, Sendable {
    /// Bytes of one zspage slot (8 pages).
    static let slotBytes = SizeClassTable.maximumPagesPerZspage * SizeClassTable.pageSize
    /// Bytes reserved per mmap.
    static let chunkBytes = 64 << 20
    static let slotsPerChunk = chunkBytes / slotBytes

    private let state: Mutex<ArenaState>
    /// Set once `madvise` reported locked memory; see ``OSMemory/discard(_:_:locked:)``.
    private let memoryLocked = Atomic<Bool>(false)
    /// Bytes this arena has mapped and not yet unmapped; outlives the arena.
    let ledger: MappingLedger

    init() {
        let ledger = MappingLedger()
        self.ledger = ledger
        state = Mutex(ArenaState(ledger: ledger))
    }

    /// A slot whose pages are all non-resident zeros.
    ///
    /// - Returns: the slot's address, or nil if the OS refused memory.
    /// - Complexity: O(1) (amortised; one `mmap` per 2048 slots).
    func acquireSlot() -> UnsafeMutableRawPointer? {
        let address = state.withLock { $0.acquire() }
        return UnsafeMutableRawPointer(bitPattern: address)
    }

    /// Discards the first `pages` pages of `slot` and makes it reusable.
    func releaseSlot(_ slot: UnsafeMutableRawPointer, touchedPages pages: Int) {
        if pages > 0 {
            OSMemory.discard(slot, pages * SizeClassTable.pageSize, locked: memoryLocked)
        }
        let address = UInt(bitPattern: slot)
        state.withLock { $0.push(address) }
    }

    /// Bytes of address space reserved (not memory used).
    var reservedBytes: Int { state.withLock { $0.chunkCount } * Self.chunkBytes }

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

/// The arena's lock-protected lists: chunk bases and free slots.
struct ArenaState: ~Copyable {
    private let ledger: MappingLedger
    private var chunks = GrowableStack()
    private var freeSlots = GrowableStack()
    /// Next never-used slot of the newest chunk, and the chunk's end.
    private var bumpNext: UInt = 0
    private var bumpEnd: UInt = 0

    init(ledger: MappingLedger) { self.ledger = ledger }

    var chunkCount: Int { chunks.count }

    /// The base address of chunk `index`.
    func chunk(_ index: Int) -> UInt { chunks[index] }

    mutating func acquire() -> UInt {
        if let slot = freeSlots.pop() { return slot }
        if bumpNext == bumpEnd {
            guard let chunk = OSMemory.reserve(PageArena.chunkBytes) else { return 0 }
            guard chunks.push(UInt(bitPattern: chunk)) else {
                OSMemory.unreserve(chunk, PageArena.chunkBytes)
                return 0
            }
            ledger.mapped(PageArena.chunkBytes)
            bumpNext = UInt(bitPattern: chunk)
            bumpEnd = bumpNext + UInt(PageArena.chunkBytes)
        }
        defer { bumpNext += UInt(PageArena.slotBytes) }
        return bumpNext
    }

    mutating func push(_ slot: UInt) {
        // If even this tiny list cannot grow the slot is simply never reused
        // (its pages were already returned).
        _ = freeSlots.push(slot)
    }

    deinit {
        for index in 0..<chunks.count {
            OSMemory.unreserve(UnsafeMutableRawPointer(bitPattern: chunks[index]).unsafelyUnwrapped, PageArena.chunkBytes)
            ledger.unmapped(PageArena.chunkBytes)
        }
    }
}

/// A malloc-backed stack of words, doubled when full.
struct GrowableStack: ~Copyable {
    private var storage: UnsafeMutablePointer<UInt>?
    private var capacity = 0
    private(set) var count = 0

    init() {}

    mutating func push(_ value: UInt) -> Bool {
        if count == capacity {
            let newCapacity = max(64, capacity * 2)
            guard let raw = realloc(storage.map { UnsafeMutableRawPointer($0) }, newCapacity * MemoryLayout<UInt>.stride)
            else { return false }
            storage = raw.bindMemory(to: UInt.self, capacity: newCapacity)
            capacity = newCapacity
        }
        storage.unsafelyUnwrapped[count] = value
        count += 1
        return true
    }

    mutating func pop() -> UInt? {
        guard count > 0 else { return nil }
        count -= 1
        return storage.unsafelyUnwrapped[count]
    }

    subscript(index: Int) -> UInt {
        precondition(index >= 0 && index < count, "stack index out of range")
        return storage.unsafelyUnwrapped[index]
    }

    deinit { free(storage) }
}
