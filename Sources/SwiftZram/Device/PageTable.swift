#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// The device's page table: one `PageSlot` per 4 KiB page, allocated with use,
/// so an empty device costs the same at every disksize.
///
/// Slots come in chunks of 1024 (16 KiB, 4 MiB of disk). Chunks hang off a
/// three-level radix of directory blocks of 2048 pointers (16 KiB each): the
/// root is allocated with the table, every other block and chunk on the first
/// write below it. The kernel allocates 16 bytes per page up front instead.
///
/// Each slot has its own lock bit; there is no table-wide lock on the data path.
/// Lookups are plain acquiring loads; a block or chunk is published with one
/// compare-exchange and never moves or goes away before the table does.
// @unchecked: `root` never changes after init, every directory entry is an atomic
// published once, and a slot's payload is touched only under that slot's lock bit.
final class PageTable: @unchecked Sendable {
    /// Pages per lazily allocated chunk (16 KiB of slots).
    static let pagesPerChunk = 1 << chunkShift
    static let chunkShift = 10
    /// log2 of the pointers in one directory block.
    static let fanoutShift = 11
    static let fanout = 1 << fanoutShift
    /// Directory levels above the chunks: root, middle, leaf.
    static let levels = 3
    /// Pages the radix can address: 2^43, 32 PiB of disk. A fully written table
    /// that size (16 bytes per page) would fill the whole 47-bit user address
    /// space of x86-64 and arm64, so no larger device could ever be filled.
    static let maximumPageCount = 1 << (chunkShift + levels * fanoutShift)
    /// Bytes of one directory block.
    static let blockBytes = fanout * MemoryLayout<Atomic<Int>>.stride
    static let chunkBytes = pagesPerChunk * MemoryLayout<PageSlot>.stride

    let pageCount: Int
    private let root: UnsafeMutablePointer<Atomic<Int>>
    /// Bytes of directory blocks and chunks allocated below the root.
    private let bytesBelowRoot = Atomic<Int>(0)

    /// - Throws: `ENOMEM` for more than ``maximumPageCount`` pages or if the
    ///   system refuses the root block.
    init(pageCount: Int) throws(ZramError) {
        guard pageCount >= 0, pageCount <= Self.maximumPageCount else {
            throw ZramError(.outOfMemory, "a page table of \(pageCount) pages is beyond the \(Self.maximumPageCount) it can address")
        }
        guard let root = Self.allocateBlock() else {
            throw ZramError(.outOfMemory, "cannot allocate the page table's root")
        }
        self.pageCount = pageCount
        self.root = root
    }

    deinit {
        for top in 0..<Self.fanout {
            guard let middle = Self.child(root, top) else { continue }
            for mid in 0..<Self.fanout {
                guard let leaf = Self.child(middle, mid) else { continue }
                for entry in 0..<Self.fanout {
                    guard let chunk = Self.child(leaf, entry) else { continue }
                    Self.freeChunk(UnsafeMutableRawPointer(chunk))
                }
                Self.freeBlock(leaf)
            }
            Self.freeBlock(middle)
        }
        Self.freeBlock(root)
    }

    /// Bytes of memory the table uses now (directory blocks plus chunks).
    var memoryUsed: Int { Self.blockBytes + bytesBelowRoot.load(ordering: .relaxed) }

    // MARK: Lookup

    /// The slot for `index` if its chunk exists; nil means the page was never written.
    @inline(__always)
    func existingSlot(_ index: Int) -> UnsafeMutablePointer<PageSlot>? {
        let chunk = index >> Self.chunkShift
        guard let middle = Self.child(root, chunk >> (2 * Self.fanoutShift)),
            let leaf = Self.child(middle, (chunk >> Self.fanoutShift) & (Self.fanout - 1)),
            let slots = Self.child(leaf, chunk & (Self.fanout - 1))
        else { return nil }
        return UnsafeMutableRawPointer(slots).assumingMemoryBound(to: PageSlot.self)
            + (index & (Self.pagesPerChunk - 1))
    }

    /// The slot for `index`, allocating its chunk (and directory blocks) on first use.
    /// - Returns: nil if the system refuses memory.
    @inline(__always)
    func slot(_ index: Int) -> UnsafeMutablePointer<PageSlot>? {
        if let slot = existingSlot(index) { return slot }
        return allocatingSlot(index)
    }

    /// Whether the chunk holding `index` was ever allocated.
    func chunkExists(containing index: Int) -> Bool { existingSlot(index) != nil }

    /// The first allocated chunk at or after the chunk holding page `index`:
    /// its first page and its slots. Skips unallocated blocks whole, so a scan
    /// of an empty table costs the same at every size.
    func nextChunk(atOrAfter index: Int) -> (firstPage: Int, slots: UnsafeMutablePointer<PageSlot>)? {
        var chunk = max(0, index) >> Self.chunkShift
        let chunkLimit = (pageCount + Self.pagesPerChunk - 1) >> Self.chunkShift
        let mask = Self.fanout - 1
        while chunk < chunkLimit {
            guard let middle = Self.child(root, chunk >> (2 * Self.fanoutShift)) else {
                chunk = (chunk >> (2 * Self.fanoutShift) + 1) << (2 * Self.fanoutShift)
                continue
            }
            guard let leaf = Self.child(middle, (chunk >> Self.fanoutShift) & mask) else {
                chunk = (chunk >> Self.fanoutShift + 1) << Self.fanoutShift
                continue
            }
            if let slots = Self.child(leaf, chunk & mask) {
                return (chunk << Self.chunkShift, UnsafeMutableRawPointer(slots).assumingMemoryBound(to: PageSlot.self))
            }
            chunk += 1
        }
        return nil
    }

    // MARK: Allocation

    @inline(never)
    private func allocatingSlot(_ index: Int) -> UnsafeMutablePointer<PageSlot>? {
        precondition(index >= 0 && index < pageCount, "page \(index) outside a table of \(pageCount)")
        let chunk = index >> Self.chunkShift
        let mask = Self.fanout - 1
        guard let middle = childOrNew(root, chunk >> (2 * Self.fanoutShift), makeChunk: false),
            let leaf = childOrNew(middle.assumingMemoryBound(to: Atomic<Int>.self), (chunk >> Self.fanoutShift) & mask, makeChunk: false),
            let slots = childOrNew(leaf.assumingMemoryBound(to: Atomic<Int>.self), chunk & mask, makeChunk: true)
        else { return nil }
        return slots.assumingMemoryBound(to: PageSlot.self) + (index & (Self.pagesPerChunk - 1))
    }

    /// Entry `entry` of `block`, installing a new directory block (or chunk) if it is empty.
    private func childOrNew(
        _ block: UnsafeMutablePointer<Atomic<Int>>, _ entry: Int, makeChunk: Bool
    ) -> UnsafeMutableRawPointer? {
        if let existing = Self.child(block, entry) { return UnsafeMutableRawPointer(existing) }
        let made: UnsafeMutableRawPointer? =
            makeChunk ? Self.allocateChunk() : Self.allocateBlock().map { UnsafeMutableRawPointer($0) }
        guard let made else { return nil }
        let (won, current) = block[entry].compareExchange(
            expected: 0, desired: Int(bitPattern: made), ordering: .acquiringAndReleasing)
        if won {
            bytesBelowRoot.add(makeChunk ? Self.chunkBytes : Self.blockBytes, ordering: .relaxed)
            return made
        }
        // Another thread installed one first: use theirs.
        if makeChunk {
            Self.freeChunk(made)
        } else {
            Self.freeBlock(made.assumingMemoryBound(to: Atomic<Int>.self))
        }
        return UnsafeMutableRawPointer(bitPattern: current)
    }

    /// The block or chunk entry `entry` of `block` points at, nil if none yet.
    @inline(__always)
    private static func child(_ block: UnsafeMutablePointer<Atomic<Int>>, _ entry: Int) -> UnsafeMutablePointer<Atomic<Int>>? {
        UnsafeMutablePointer(bitPattern: block[entry].load(ordering: .acquiring))
    }

    /// A directory block of empty entries, or nil if the system refuses memory.
    private static func allocateBlock() -> UnsafeMutablePointer<Atomic<Int>>? {
        guard let raw = malloc(blockBytes) else { return nil }
        let block = raw.bindMemory(to: Atomic<Int>.self, capacity: fanout)
        for entry in 0..<fanout { (block + entry).initialize(to: Atomic(0)) }
        return block
    }

    private static func freeBlock(_ block: UnsafeMutablePointer<Atomic<Int>>) {
        block.deinitialize(count: fanout)
        free(block)
    }

    /// A chunk of empty slots, or nil if the system refuses memory.
    private static func allocateChunk() -> UnsafeMutableRawPointer? {
        guard let raw = malloc(chunkBytes) else { return nil }
        let slots = raw.bindMemory(to: PageSlot.self, capacity: pagesPerChunk)
        for page in 0..<pagesPerChunk { (slots + page).initialize(to: PageSlot()) }
        return raw
    }

    private static func freeChunk(_ raw: UnsafeMutableRawPointer) {
        raw.assumingMemoryBound(to: PageSlot.self).deinitialize(count: pagesPerChunk)
        free(raw)
    }
}
