/// Where an object lives now: its zspage (class-local descriptor id) and
/// its object index inside that zspage.
struct ObjectLocation: Equatable {
    var zspage: UInt32
    var index: UInt32
}

/// A size class's location table: class-local id → ``ObjectLocation``.
///
/// One 8-byte entry per id. A live entry has bit 63 set, the zspage id in
/// bits 16...47 and the object index in bits 0...15. Freed ids form a LIFO
/// free list threaded through the entries (a free entry holds the next free
/// id). Grows lazily, 1024 entries at a time; entries never move.
struct HandleTable: ~Copyable {
    /// Largest class-local id: ``ObjectOwnerTable`` stores `id + 1` below its
    /// free tag (bit 31).
    static let maximumLocalId: UInt32 = ObjectOwnerTable.freeTag - 2
    private static let liveTag: UInt64 = 1 << 63
    private static let endOfList = UInt32.max

    private var entries = ChunkedTable<UInt64>()
    private var freeHead = HandleTable.endOfList
    /// Ids below this have been handed out at least once.
    private var highWater: UInt32 = 0
    /// Ids currently live.
    private(set) var liveCount = 0

    init() {}

    /// Makes sure the next ``allocate(_:)`` cannot fail.
    ///
    /// - Returns: false if the table needed to grow and could not.
    mutating func reserveOne() -> Bool {
        if freeHead != Self.endOfList || Int(highWater) < entries.capacity { return true }
        return entries.grow()
    }

    /// Takes a free id and points it at `location`.
    ///
    /// - Returns: the id, or nil if the table could not grow.
    /// - Complexity: amortised O(1).
    mutating func allocate(_ location: ObjectLocation) -> UInt32? {
        let id: UInt32
        if freeHead != Self.endOfList {
            id = freeHead
            freeHead = UInt32(truncatingIfNeeded: entries[Int(id)])
        } else {
            precondition(highWater <= Self.maximumLocalId, "a class ran out of local ids")
            if Int(highWater) == entries.capacity {
                guard entries.grow() else { return nil }
            }
            id = highWater
            highWater += 1
        }
        entries[Int(id)] = Self.encode(location)
        liveCount += 1
        return id
    }

    /// The location of live id `id`.
    @inline(__always)
    func location(_ id: UInt32) -> ObjectLocation {
        precondition(id < highWater, "handle id \(id) was never allocated")
        let entry = entries[Int(id)]
        precondition(entry & Self.liveTag != 0, "handle id \(id) is not live (double free or stale handle)")
        return ObjectLocation(zspage: UInt32(truncatingIfNeeded: entry >> 16), index: UInt32(entry & 0xFFFF))
    }

    /// The address of id `id`'s entry, for a prefetch; nil for an id beyond the table.
    @inline(__always)
    func entryAddress(_ id: UInt32) -> UnsafeRawPointer? {
        Int(id) < entries.capacity ? UnsafeRawPointer(entries.pointer(Int(id))) : nil
    }

    /// Repoints live id `id` (compaction moved the object).
    @inline(__always)
    func move(_ id: UInt32, to location: ObjectLocation) {
        precondition(entries[Int(id)] & Self.liveTag != 0, "only live handles move")
        entries[Int(id)] = Self.encode(location)
    }

    /// Returns live id `id` to the free list.
    mutating func release(_ id: UInt32) {
        precondition(id < highWater, "handle id \(id) was never allocated")
        precondition(entries[Int(id)] & Self.liveTag != 0, "handle id \(id) freed twice")
        entries[Int(id)] = UInt64(freeHead)
        freeHead = id
        liveCount -= 1
    }

    @inline(__always)
    private static func encode(_ location: ObjectLocation) -> UInt64 {
        liveTag | UInt64(location.zspage) << 16 | UInt64(location.index)
    }
}
