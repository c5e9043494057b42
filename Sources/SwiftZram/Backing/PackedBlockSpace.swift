#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Packed writeback (`writeback_layout packed`, beyond the kernel): compressed objects
/// placed back to back at byte granularity inside 4 KiB blocks, where the kernel
/// spends a whole block on every page. An object never straddles two blocks, and a
/// raw (huge) page still takes a block of its own.
///
/// Each block counts the bytes of its live objects. Overwrites and discards lower
/// the count, and a block whose count reaches zero is free again and discarded on
/// the store: that is how holes are reclaimed. A block with a few live objects keeps
/// its whole 4 KiB until they go (objects are not moved between blocks).
///
/// Objects fill the open block in order; `sealBatch()` closes it at the end of each
/// writeback batch, because a batch writes whole block images and has none of the
/// objects an earlier batch put in a block.
final class PackedBlockSpace: BackingSpace {
    let blockCount: Int
    private let state: Mutex<PackedState>
    private let used = Atomic<Int>(0)
    private let objectCount = Atomic<Int>(0)
    private let storedBytes = Atomic<Int>(0)

    /// - Throws: `ENOMEM` if the system refuses the bitmap or the per-block counts.
    init(capacity: UInt64) throws(ZramError) {
        let blocks = Int(clamping: capacity / UInt64(pageSize))
        guard let bitmap = BlockBitmap(blocks: blocks), let live = LiveBytes(blocks: blocks) else {
            throw ZramError(.outOfMemory, "cannot allocate the block maps of a \(capacity)-byte backing store")
        }
        blockCount = blocks
        state = Mutex(PackedState(bitmap: bitmap, live: live))
    }

    func allocate(bytes: Int) -> UInt64? {
        precondition(bytes >= 1 && bytes <= pageSize, "object size \(bytes) outside 1...\(pageSize)")
        let placed: (offset: UInt64, newBlock: Bool)? = state.withLock { state in
            if let open = state.openBlock, state.fill + bytes <= pageSize {
                let offset = UInt64(open) * UInt64(pageSize) + UInt64(state.fill)
                state.fill += bytes
                state.live.add(bytes, to: open)
                return (offset, false)
            }
            guard let block = state.bitmap.take() else { return nil }
            state.openBlock = block
            state.fill = bytes
            state.live.add(bytes, to: block)
            return (UInt64(block) * UInt64(pageSize), true)
        }
        guard let placed else { return nil }
        if placed.newBlock { used.add(1, ordering: .relaxed) }
        objectCount.add(1, ordering: .relaxed)
        storedBytes.add(bytes, ordering: .relaxed)
        return placed.offset
    }

    func free(at offset: UInt64, bytes: Int) -> BackingRange? {
        let block = Int(offset / UInt64(pageSize))
        precondition(block < blockCount, "offset \(offset) is past this store")
        objectCount.subtract(1, ordering: .relaxed)
        storedBytes.subtract(bytes, ordering: .relaxed)
        let emptied = state.withLock { state in
            guard state.live.subtract(bytes, from: block) == 0 else { return false }
            if state.openBlock == block { state.openBlock = nil }
            return true
        }
        guard emptied else { return nil }
        return BackingRange(offset: UInt64(block) * UInt64(pageSize), length: UInt64(pageSize))
    }

    func reclaim(_ range: BackingRange) {
        state.withLock { $0.bitmap.give(Int(range.offset / UInt64(pageSize))) }
        used.subtract(1, ordering: .relaxed)
    }

    func sealBatch() { state.withLock { $0.openBlock = nil } }

    var blocksInUse: Int { used.load(ordering: .relaxed) }
    var objects: Int { objectCount.load(ordering: .relaxed) }
    var objectBytes: Int { storedBytes.load(ordering: .relaxed) }
}

/// The blocks in use, the live bytes of each, and the block being filled.
struct PackedState: ~Copyable {
    var bitmap: BlockBitmap
    var live: LiveBytes
    var openBlock: Int?
    /// Bytes placed in the open block.
    var fill = 0

    init(bitmap: consuming BlockBitmap, live: consuming LiveBytes) {
        self.bitmap = bitmap
        self.live = live
    }
}

/// Live object bytes per block (0...4096), lazily resident like the bitmap.
struct LiveBytes: ~Copyable {
    private let counts: UnsafeMutablePointer<UInt16>?

    init?(blocks: Int) {
        if blocks == 0 {
            counts = nil
        } else {
            guard let raw = calloc(blocks, MemoryLayout<UInt16>.stride) else { return nil }
            counts = raw.bindMemory(to: UInt16.self, capacity: blocks)
        }
    }

    deinit { free(counts) }

    mutating func add(_ bytes: Int, to block: Int) {
        guard let counts else { return }
        counts[block] += UInt16(bytes)
    }

    /// - Returns: the bytes left in the block.
    mutating func subtract(_ bytes: Int, from block: Int) -> Int {
        guard let counts else { return 0 }
        precondition(Int(counts[block]) >= bytes, "block \(block) frees more bytes than it holds")
        counts[block] -= UInt16(bytes)
        return Int(counts[block])
    }
}
