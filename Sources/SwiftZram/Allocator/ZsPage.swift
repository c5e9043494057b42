/// Metadata of one zspage: a slot of ``PageArena/slotBytes`` contiguous
/// virtual bytes of which the first `pagesPerZspage` pages may be used.
///
/// Objects are handed out from the free list first (objects freed earlier,
/// linked through the class's ``ObjectOwnerTable``), then from the untouched end (`bump`), so
/// pages become resident only as objects reach them. Descriptors live in
/// the class's ``ChunkedTable`` and link into one fullness-group list each.
struct ZsPageDescriptor: BitwiseCopyable {
    /// Start of the slot, or 0 while the descriptor is unused.
    var base: UInt
    /// Fullness-group list links (descriptor ids); `next` threads the
    /// descriptor free list while unused.
    var previous: UInt32
    var next: UInt32
    /// Live objects.
    var inUse: UInt16
    /// Objects below this index have been handed out at least once.
    var bump: UInt16
    /// First free object below `bump`, or ``FreeObjectLink/endOfList``.
    var freeHead: UInt16
    /// Readers inside `withObject` on this zspage; compaction skips it meanwhile.
    var pins: UInt16
    /// Pages objects have reached so far (a prefix of the slot): what the zspage
    /// counts in ``ZsPool/memoryUsed``.
    var touchedPages: UInt8
    /// Pages that were already resident when the zspage took its slot from the
    /// arena's reserve (all of them, or 0).
    var faultedPages: UInt8
    /// The ``FullnessGroup`` list this zspage is on.
    var group: UInt8

    static let none = UInt32.max

    @inline(__always)
    var baseAddress: UnsafeMutableRawPointer {
        UnsafeMutableRawPointer(bitPattern: base).unsafelyUnwrapped
    }
}

/// The kernel's fullness groups: a zspage is 0 % (empty), 1–9 %, 10–19 %,
/// … 90–99 %, or 100 % used. Empty zspages are freed at once, so group 0 is
/// only ever held for an instant by a zspage being filled for the first time.
enum FullnessGroup {
    static let count = 12
    static let empty = 0
    static let full = 11
    /// Groups that have room, fullest first: where allocation looks.
    static let fullestNonFull = 10
    static let leastUsedNonEmpty = 1

    /// The group for `inUse` of `capacity` objects.
    ///
    /// - Complexity: O(1).
    @inline(__always)
    static func group(inUse: Int, capacity: Int) -> Int {
        if inUse == 0 { return empty }
        if inUse >= capacity { return full }
        return inUse * 100 / capacity / 10 + 1
    }
}
