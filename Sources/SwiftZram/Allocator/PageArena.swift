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

    private let state = Mutex(ArenaState())
    /// Set once `madvise` reported locked memory; see ``OSMemory/discard(_:_:locked:)``.
    private let memoryLocked = Atomic<Bool>(false)

    init() {}

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
}

/// The arena's lock-protected lists: chunk bases and free slots.
struct ArenaState: ~Copyable {
    private var chunks = GrowableStack()
    private var freeSlots = GrowableStack()
    /// Next never-used slot of the newest chunk, and the chunk's end.
    private var bumpNext: UInt = 0
    private var bumpEnd: UInt = 0

    var chunkCount: Int { chunks.count }

    mutating func acquire() -> UInt {
        if let slot = freeSlots.pop() { return slot }
        if bumpNext == bumpEnd {
            guard let chunk = OSMemory.reserve(PageArena.chunkBytes) else { return 0 }
            guard chunks.push(UInt(bitPattern: chunk)) else {
                OSMemory.unreserve(chunk, PageArena.chunkBytes)
                return 0
            }
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
