import CPlatform

/// A zspage handed back by a size class, to be returned to the arena
/// outside the class lock.
struct ReleasedZspage {
    var slot: UInt
    /// Pages objects reached (what the zspage counted).
    var touchedPages: Int
    /// Pages resident in the slot: the touched ones, or all when the slot came from the reserve.
    var residentPages: Int
    /// The zspage's length.
    var pages: Int

    var slotAddress: UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: slot).unsafelyUnwrapped }
}

/// The mutable state of one size class, guarded by that class's mutex:
/// its zspages, their fullness-group lists, its handle table (id → object)
/// and its owner table (object → id).
///
/// Every method runs under the class lock. Methods never block on anything
/// but the arena's slot lock (when a zspage is created).
struct SizeClassState: ~Copyable {
    let size: Int
    let objectsPerZspage: Int
    let pagesPerZspage: Int
    let isHuge: Bool

    var handles = HandleTable()
    var owners: ObjectOwnerTable
    var zspages = ChunkedTable<ZsPageDescriptor>()
    private var zspageFreeHead = ZsPageDescriptor.none
    private var zspageHighWater: UInt32 = 0
    /// Head of each fullness group's doubly linked list of zspages.
    private var groupHeads = InlineArray<12, UInt32>(repeating: ZsPageDescriptor.none)

    /// Zspages allocated now.
    private(set) var zspageCount = 0
    /// Resident pages of this class's zspages.
    private(set) var pagesHeld = 0

    init(_ info: SizeClassInfo) {
        precondition(FullnessGroup.count == 12, "groupHeads is sized for 12 fullness groups")
        size = info.size
        objectsPerZspage = info.objectsPerZspage
        pagesPerZspage = info.pagesPerZspage
        isHuge = info.isHuge
        owners = ObjectOwnerTable(objectsPerZspage: info.objectsPerZspage)
    }

    var liveObjects: Int { handles.liveCount }

    /// Zspages that could be freed if the live objects were packed tightly.
    var freeableZspages: Int { zspageCount - (liveObjects + objectsPerZspage - 1) / objectsPerZspage }

    // MARK: Store, locate, free

    /// Allocates an object and copies `payload` in.
    ///
    /// - Returns: the class-local id, or nil if the OS refused memory.
    /// - Complexity: O(1) (a scan of the 12 fullness groups).
    mutating func store(_ payload: UnsafeRawBufferPointer, arena: borrowing PageArena) -> UInt32? {
        precondition(payload.count <= size, "payload of \(payload.count) bytes sent to class of size \(size)")
        guard handles.reserveOne() else { return nil }
        let zspage: UInt32
        if let existing = fullestNonFull(excluding: ZsPageDescriptor.none) {
            zspage = existing
        } else {
            guard let created = createZspage(arena: arena) else { return nil }
            zspage = created
        }
        let index = takeObject(zspage)
        let object = objectAddress(zspage, index)
        guard let id = handles.allocate(ObjectLocation(zspage: zspage, index: index)) else {
            preconditionFailure("handle table capacity was reserved")
        }
        owners.setOwner(zspage, index, id)
        if let source = payload.baseAddress {
            object.copyMemory(from: source, byteCount: payload.count)
        }
        return id
    }

    /// Pages the next ``store(_:arena:)`` will make resident: 0 when it reuses a
    /// freed object, else the pages its object reaches past the zspage's touched end.
    func pagesNeededForNextStore() -> Int {
        guard let zspage = fullestNonFull(excluding: ZsPageDescriptor.none) else {
            return (size + SizeClassTable.pageSize - 1) / SizeClassTable.pageSize
        }
        let descriptor = zspages[Int(zspage)]
        if UInt32(descriptor.freeHead) != FreeObjectLink.endOfList { return 0 }
        let end = (Int(descriptor.bump) + 1) * size
        let needed = (end + SizeClassTable.pageSize - 1) / SizeClassTable.pageSize
        return max(0, needed - Int(descriptor.touchedPages))
    }

    /// Pins the zspage holding `id` so compaction leaves it alone.
    ///
    /// - Returns: the zspage id (for ``unpin(_:)``) and the payload address.
    mutating func pin(_ id: UInt32) -> (zspage: UInt32, payload: UInt) {
        let location = handles.location(id)
        let descriptor = zspages.pointer(Int(location.zspage))
        precondition(descriptor.pointee.pins < UInt16.max, "too many concurrent readers of one zspage")
        descriptor.pointee.pins += 1
        let payload = objectAddress(location.zspage, location.index)
        return (location.zspage, UInt(bitPattern: payload))
    }

    /// Starts loading the handle entry ``pin(_:)`` will read for `id`.
    func prefetchHandle(_ id: UInt32) {
        if let entry = handles.entryAddress(id) { cplatform_prefetch(entry, 8) }
    }

    /// Starts loading the descriptor of the zspage holding live object `id`, whose handle
    /// entry should be cached by now (``prefetchHandle(_:)``).
    func prefetchZspage(_ id: UInt32) {
        let location = handles.location(id)
        cplatform_prefetch(zspages.pointer(Int(location.zspage)), MemoryLayout<ZsPageDescriptor>.size)
    }

    /// Starts loading the lines ``free(_:)`` changes besides the handle entry: the
    /// descriptor of the zspage holding live object `id` and the object's owner entry.
    func prefetchRelease(_ id: UInt32) {
        let location = handles.location(id)
        cplatform_prefetch(zspages.pointer(Int(location.zspage)), MemoryLayout<ZsPageDescriptor>.size)
        owners.prefetch(location.zspage, location.index)
    }

    mutating func unpin(_ zspage: UInt32) {
        let descriptor = zspages.pointer(Int(zspage))
        precondition(descriptor.pointee.pins > 0, "unpin without pin")
        descriptor.pointee.pins -= 1
    }

    /// Frees object `id`.
    ///
    /// - Returns: the zspage if it became empty (already unlinked; the
    ///   caller returns it to the arena).
    /// - Complexity: O(1).
    mutating func free(_ id: UInt32) -> ReleasedZspage? {
        let location = handles.location(id)
        handles.release(id)
        return releaseObject(location)
    }

    // MARK: Object slots within zspages

    @inline(__always)
    func objectAddress(_ zspage: UInt32, _ index: UInt32) -> UnsafeMutableRawPointer {
        zspages[Int(zspage)].baseAddress + Int(index) * size
    }

    /// Takes a free object of `zspage` (free list first, then fresh space)
    /// and moves the zspage to its new fullness group.
    mutating func takeObject(_ zspage: UInt32) -> UInt32 {
        let descriptor = zspages.pointer(Int(zspage))
        precondition(Int(descriptor.pointee.inUse) < objectsPerZspage, "takeObject on a full zspage")
        let index: UInt32
        if UInt32(descriptor.pointee.freeHead) != FreeObjectLink.endOfList {
            index = UInt32(descriptor.pointee.freeHead)
            let next = owners.nextFree(zspage, index)
            precondition(
                next == FreeObjectLink.endOfList || next < UInt32(descriptor.pointee.bump),
                "corrupt free list in zspage \(zspage)")
            descriptor.pointee.freeHead = UInt16(truncatingIfNeeded: next)
        } else {
            index = UInt32(descriptor.pointee.bump)
            descriptor.pointee.bump += 1
            let end = (Int(index) + 1) * size
            let needed = (end + SizeClassTable.pageSize - 1) / SizeClassTable.pageSize
            let touched = Int(descriptor.pointee.touchedPages)
            if needed > touched {
                precondition(needed <= pagesPerZspage, "object runs past its zspage")
                descriptor.pointee.touchedPages = UInt8(needed)
                pagesHeld += needed - touched
            }
        }
        descriptor.pointee.inUse += 1
        regroup(zspage)
        return index
    }

    /// Returns the object at `location` to its zspage's free list; frees the
    /// zspage if that was its last object.
    mutating func releaseObject(_ location: ObjectLocation) -> ReleasedZspage? {
        let descriptor = zspages.pointer(Int(location.zspage))
        precondition(descriptor.pointee.inUse > 0, "release from an empty zspage")
        owners.release(location.zspage, location.index, next: UInt32(descriptor.pointee.freeHead))
        descriptor.pointee.inUse -= 1
        if descriptor.pointee.inUse == 0 {
            precondition(descriptor.pointee.pins == 0, "an object was freed while a reader was inside withObject")
            return retireZspage(location.zspage)
        }
        descriptor.pointee.freeHead = UInt16(location.index)
        regroup(location.zspage)
        return nil
    }

    // MARK: Zspage lifecycle

    private mutating func createZspage(arena: borrowing PageArena) -> UInt32? {
        let id: UInt32
        if zspageFreeHead != ZsPageDescriptor.none {
            id = zspageFreeHead
        } else {
            if Int(zspageHighWater) == zspages.capacity {
                guard zspages.grow() else { return nil }
            }
            guard owners.reserve(zspages: Int(zspageHighWater) + 1) else { return nil }
            id = zspageHighWater
        }
        guard let (slot, resident) = arena.acquireSlot(pages: pagesPerZspage) else { return nil }
        if id == zspageFreeHead {
            zspageFreeHead = zspages[Int(id)].next
        } else {
            zspageHighWater += 1
        }
        zspages[Int(id)] = ZsPageDescriptor(
            base: UInt(bitPattern: slot), previous: ZsPageDescriptor.none, next: ZsPageDescriptor.none,
            inUse: 0, bump: 0, freeHead: UInt16(FreeObjectLink.endOfList), pins: 0, touchedPages: 0,
            faultedPages: UInt8(resident), group: UInt8(FullnessGroup.empty))
        link(id, group: FullnessGroup.empty)
        zspageCount += 1
        return id
    }

    private mutating func retireZspage(_ zspage: UInt32) -> ReleasedZspage {
        unlink(zspage)
        let descriptor = zspages.pointer(Int(zspage))
        let touched = Int(descriptor.pointee.touchedPages)
        let released = ReleasedZspage(
            slot: descriptor.pointee.base, touchedPages: touched,
            residentPages: max(touched, Int(descriptor.pointee.faultedPages)), pages: pagesPerZspage)
        pagesHeld -= released.touchedPages
        zspageCount -= 1
        descriptor.pointee.base = 0
        descriptor.pointee.next = zspageFreeHead
        zspageFreeHead = zspage
        return released
    }

    // MARK: Fullness groups

    /// The fullest zspage that still has room, other than `excluded`.
    ///
    /// - Complexity: O(1): at most 10 group heads plus one skipped entry.
    func fullestNonFull(excluding excluded: UInt32) -> UInt32? {
        var group = FullnessGroup.fullestNonFull
        while group >= FullnessGroup.empty {
            var zspage = groupHeads[group]
            if zspage == excluded, zspage != ZsPageDescriptor.none { zspage = zspages[Int(zspage)].next }
            if zspage != ZsPageDescriptor.none { return zspage }
            group -= 1
        }
        return nil
    }

    /// The least-used zspage that no reader has pinned.
    ///
    /// - Complexity: O(1) unless many zspages are pinned.
    func leastUsedUnpinned() -> UInt32? {
        for group in FullnessGroup.leastUsedNonEmpty...FullnessGroup.fullestNonFull {
            var zspage = groupHeads[group]
            while zspage != ZsPageDescriptor.none {
                let descriptor = zspages[Int(zspage)]
                if descriptor.pins == 0 { return zspage }
                zspage = descriptor.next
            }
        }
        return nil
    }

    private mutating func regroup(_ zspage: UInt32) {
        let descriptor = zspages[Int(zspage)]
        let group = FullnessGroup.group(inUse: Int(descriptor.inUse), capacity: objectsPerZspage)
        if group != Int(descriptor.group) {
            unlink(zspage)
            link(zspage, group: group)
        }
    }

    private mutating func link(_ zspage: UInt32, group: Int) {
        let descriptor = zspages.pointer(Int(zspage))
        let head = groupHeads[group]
        descriptor.pointee.group = UInt8(group)
        descriptor.pointee.previous = ZsPageDescriptor.none
        descriptor.pointee.next = head
        if head != ZsPageDescriptor.none { zspages.pointer(Int(head)).pointee.previous = zspage }
        groupHeads[group] = zspage
    }

    private mutating func unlink(_ zspage: UInt32) {
        let descriptor = zspages[Int(zspage)]
        if descriptor.previous != ZsPageDescriptor.none {
            zspages.pointer(Int(descriptor.previous)).pointee.next = descriptor.next
        } else {
            precondition(groupHeads[Int(descriptor.group)] == zspage, "zspage missing from its fullness group")
            groupHeads[Int(descriptor.group)] = descriptor.next
        }
        if descriptor.next != ZsPageDescriptor.none {
            zspages.pointer(Int(descriptor.next)).pointee.previous = descriptor.previous
        }
    }
}
