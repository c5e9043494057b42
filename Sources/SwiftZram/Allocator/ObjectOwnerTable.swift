import CPlatform

/// The end of a zspage's free-object list (never a valid object index). The
/// list is threaded through the class's ``ObjectOwnerTable``, not through the
/// free objects: freeing an object never touches its bytes, which after random
/// overwrites are cold lines scattered over the pool.
enum FreeObjectLink {
    static let endOfList: UInt32 = 0xFFFF
}

/// A size class's reverse map: (zspage, object index) → the class-local id
/// that owns the object, so compaction can repoint a moved object's handle.
///
/// This replaces an in-object header: objects carry payload bytes only, and
/// the owner lives here, outside the zspages (like the kernel's
/// `struct zspage`, it is malloc-heap metadata and not part of
/// mem_used_total).
///
/// Layout: one `UInt32` per object slot, entry `zspage * objectsPerZspage +
/// index`, holding `id + 1` while the slot is allocated, ``freeTag`` plus the
/// next free object's index while it is on its zspage's free list, and 0 if
/// it was never handed out. Zspage descriptor ids are dense (reused LIFO), so the table covers
/// the class's high-water mark of zspages: 4 bytes per object slot, grown
/// lazily in 1 KiB chunks of 256 entries (``ChunkedTable``; small chunks
/// because a pool spreads its objects over up to 177 classes) and never
/// shrunk. On a 439 MB anonymous-memory capture (104,802 objects over 152
/// classes) that is about 0.55 MB, ~5.2 bytes per object.
struct ObjectOwnerTable: ~Copyable {
    let objectsPerZspage: Int
    /// Marks a free entry; its low 16 bits link the zspage's free list. Ids stay
    /// below it (``HandleTable/maximumLocalId``).
    static let freeTag: UInt32 = 1 << 31
    private var entries = ChunkedTable<UInt32>(chunkShift: 8)

    init(objectsPerZspage: Int) {
        self.objectsPerZspage = objectsPerZspage
    }

    /// Bytes of table allocated (side metadata, not counted in memoryUsed).
    var allocatedBytes: Int { entries.capacity * MemoryLayout<UInt32>.stride }

    /// Makes room for the slots of zspage descriptor ids `0..<zspages`; new
    /// entries read as free.
    ///
    /// - Returns: false if the OS refused memory (entries already there stay).
    /// - Complexity: amortised O(1) per object slot added.
    mutating func reserve(zspages: Int) -> Bool {
        let needed = zspages * objectsPerZspage
        while entries.capacity < needed {
            let start = entries.capacity
            guard entries.grow() else { return false }
            entries.pointer(start).initialize(repeating: 0, count: entries.capacity - start)
        }
        return true
    }

    /// The id owning the object, or nil if the slot is free.
    @inline(__always)
    func owner(_ zspage: UInt32, _ index: UInt32) -> UInt32? {
        let entry = entries[slot(zspage, index)]
        return entry == 0 || entry & Self.freeTag != 0 ? nil : entry - 1
    }

    /// Records that `id` owns the (free) object.
    @inline(__always)
    func setOwner(_ zspage: UInt32, _ index: UInt32, _ id: UInt32) {
        let pointer = entries.pointer(slot(zspage, index))
        precondition(
            pointer.pointee == 0 || pointer.pointee & Self.freeTag != 0, "object \(index) of zspage \(zspage) is already owned")
        pointer.pointee = id + 1
    }

    /// Marks the (allocated) object free and links it to `next`, the zspage's free
    /// list it now heads.
    @inline(__always)
    func release(_ zspage: UInt32, _ index: UInt32, next: UInt32) {
        let pointer = entries.pointer(slot(zspage, index))
        precondition(
            pointer.pointee != 0 && pointer.pointee & Self.freeTag == 0, "object \(index) of zspage \(zspage) is already free")
        pointer.pointee = Self.freeTag | next
    }

    /// The object after free object `index` on its zspage's free list.
    @inline(__always)
    func nextFree(_ zspage: UInt32, _ index: UInt32) -> UInt32 {
        let entry = entries[slot(zspage, index)]
        precondition(entry & Self.freeTag != 0, "corrupt free list in zspage \(zspage): object \(index) is not free")
        return entry & 0xFFFF
    }

    /// Starts loading the object's entry.
    @inline(__always)
    func prefetch(_ zspage: UInt32, _ index: UInt32) {
        cplatform_prefetch(entries.pointer(slot(zspage, index)), MemoryLayout<UInt32>.size)
    }

    @inline(__always)
    private func slot(_ zspage: UInt32, _ index: UInt32) -> Int {
        Int(zspage) * objectsPerZspage + Int(index)
    }
}
