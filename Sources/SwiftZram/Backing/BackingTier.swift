import Synchronization

/// An initialised device's backing store: the store, the layout of the objects
/// written to it, and the `bd_stat` counters. Created with the device's `ZramStore`
/// when disksize is set, gone with it on reset.
final class BackingTier: Sendable {
    let store: any BackingStore
    let space: any BackingSpace
    /// Pages read from and written to the store (bd_reads, bd_writes).
    let pagesRead = Atomic<Int>(0)
    let pagesWritten = Atomic<Int>(0)

    init(store: any BackingStore, space: any BackingSpace) {
        self.store = store
        self.space = space
    }

    /// bd_stat now.
    var statistics: BackingStatistics {
        BackingStatistics(
            count: UInt64(space.blocksInUse), reads: UInt64(pagesRead.load(ordering: .relaxed)),
            writes: UInt64(pagesWritten.load(ordering: .relaxed)))
    }

    /// Reads `buffer.count` bytes of one page's object at `offset`, counting one page read.
    @inline(__always)
    func readPage(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(ZramError) {
        pagesRead.wrappingAdd(1, ordering: .relaxed)
        try store.read(into: buffer, at: offset)
    }

    /// Frees the room of an object that no slot points at any more, and discards what it
    /// frees. The room is allocatable again only after the discard: otherwise a writeback
    /// could place and write an object there first, and the discard would wipe it.
    func release(at offset: UInt64, bytes: Int) {
        guard let range = space.free(at: offset, bytes: bytes) else { return }
        store.discard(at: range.offset, length: range.length)
        space.reclaim(range)
    }
}

/// zram's `bd_stat`, in 4 KiB units.
public struct BackingStatistics: Sendable, Hashable, Codable {
    /// Blocks of the backing store in use.
    public var count: UInt64 = 0
    /// Pages read back from the backing store.
    public var reads: UInt64 = 0
    /// Pages written to the backing store.
    public var writes: UInt64 = 0

    public init(count: UInt64 = 0, reads: UInt64 = 0, writes: UInt64 = 0) {
        self.count = count
        self.reads = reads
        self.writes = writes
    }

    public var fields: [UInt64] { [count, reads, writes] }

    /// The field names, as `znbd status --json` and zram's documentation spell them.
    public static let fieldNames = ["bd_count", "bd_reads", "bd_writes"]

    /// The line `/sys/block/zramN/bd_stat` would print.
    public var kernelText: String { kernelStatLine(fields) }
}

extension BackingTier {
    /// Prepares `store` for a device of `diskSize` bytes and lays out its room one page
    /// per block (the kernel's layout) or `packed`.
    /// - Throws: what the store's `prepare` throws (`ENOSPC`, `EINVAL`), `ENOMEM` for the block maps.
    static func prepared(_ store: any BackingStore, diskSize: UInt64, packed: Bool) throws(ZramError) -> BackingTier {
        try store.prepare(capacity: diskSize)
        let space: any BackingSpace =
            packed ? try PackedBlockSpace(capacity: store.capacity) : try PageBlockSpace(capacity: store.capacity)
        return BackingTier(store: store, space: space)
    }

    /// `bd_layout_stat`: objects in the store, their bytes, the bytes of the blocks
    /// holding them, and the bytes saved against one block per page.
    var layoutStatistics: [UInt64] {
        let objects = UInt64(space.objects)
        let blocks = UInt64(space.blocksInUse)
        return [objects, UInt64(space.objectBytes), blocks * UInt64(pageSize), (objects - min(objects, blocks)) * UInt64(pageSize)]
    }
}
