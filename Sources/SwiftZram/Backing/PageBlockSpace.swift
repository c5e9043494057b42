#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// The kernel's layout: every written-back page takes one whole 4 KiB block,
/// whatever its object's size. A bitmap marks the blocks in use.
///
/// The bitmap comes from `calloc`, which maps large sizes lazily: its pages become
/// resident only as allocation reaches them, so a backing store sized to a large
/// disksize costs memory in proportion to what is written back, not to its size.
/// Allocation is first-fit from a hint (the lowest word that may have a free bit),
/// so the blocks used stay packed at the start of the store.
final class PageBlockSpace: BackingSpace {
    let blockCount: Int
    private let bitmap: Mutex<BlockBitmap>
    private let used = Atomic<Int>(0)
    private let storedBytes = Atomic<Int>(0)

    /// - Parameter capacity: usable bytes of the store; a partial block at the end is not used.
    /// - Throws: `ENOMEM` if the system refuses the bitmap.
    init(capacity: UInt64) throws(ZramError) {
        let blocks = Int(clamping: capacity / UInt64(pageSize))
        guard let bitmap = BlockBitmap(blocks: blocks) else {
            throw ZramError(.outOfMemory, "cannot allocate the bitmap of a \(capacity)-byte backing store")
        }
        self.blockCount = blocks
        self.bitmap = Mutex(bitmap)
    }

    func allocate(bytes: Int) -> UInt64? {
        precondition(bytes >= 1 && bytes <= pageSize, "object size \(bytes) outside 1...\(pageSize)")
        guard let block = bitmap.withLock({ $0.take() }) else { return nil }
        used.add(1, ordering: .relaxed)
        storedBytes.add(bytes, ordering: .relaxed)
        return UInt64(block) * UInt64(pageSize)
    }

    func free(at offset: UInt64, bytes: Int) -> BackingRange? {
        let block = Int(offset / UInt64(pageSize))
        precondition(offset % UInt64(pageSize) == 0 && block < blockCount, "offset \(offset) is not a block of this store")
        storedBytes.subtract(bytes, ordering: .relaxed)
        return BackingRange(offset: offset, length: UInt64(pageSize))
    }

    func reclaim(_ range: BackingRange) {
        bitmap.withLock { $0.give(Int(range.offset / UInt64(pageSize))) }
        used.subtract(1, ordering: .relaxed)
    }

    func sealBatch() {}

    var blocksInUse: Int { used.load(ordering: .relaxed) }
    var objects: Int { used.load(ordering: .relaxed) }
    var objectBytes: Int { storedBytes.load(ordering: .relaxed) }
}

/// One bit per block, set while the block is in use.
struct BlockBitmap: ~Copyable {
    private let words: UnsafeMutablePointer<UInt64>?
    private let wordCount: Int
    private let blocks: Int
    /// No word below this one has a free bit.
    private var hint = 0

    /// nil if the system refuses the memory.
    init?(blocks: Int) {
        self.blocks = blocks
        wordCount = (blocks + 63) / 64
        if wordCount == 0 {
            words = nil
        } else {
            guard let raw = calloc(wordCount, MemoryLayout<UInt64>.stride) else { return nil }
            words = raw.bindMemory(to: UInt64.self, capacity: wordCount)
        }
    }

    deinit { free(words) }

    /// Marks the lowest free block used. - Returns: it, or nil when every block is used.
    mutating func take() -> Int? {
        guard let words else { return nil }
        var index = hint
        while index < wordCount {
            let word = words[index]
            if word != .max {
                let bit = (~word).trailingZeroBitCount
                let block = index * 64 + bit
                guard block < blocks else { break }
                words[index] = word | (1 << UInt64(bit))
                hint = index
                return block
            }
            index += 1
        }
        hint = wordCount
        return nil
    }

    /// Marks `block` free.
    mutating func give(_ block: Int) {
        guard let words else { return }
        let index = block / 64
        let bit = UInt64(1) << UInt64(block % 64)
        precondition(words[index] & bit != 0, "block \(block) freed twice")
        words[index] &= ~bit
        hint = min(hint, index)
    }
}
