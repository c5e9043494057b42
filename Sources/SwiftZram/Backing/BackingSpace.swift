/// Where written-back objects lie in a backing store, and which room is free.
///
/// A slot of a written-back page keeps only a byte offset (its payload) and the
/// object's size (its state), so a layout is free to place objects as it likes:
/// one 4 KiB block per page (``PageBlockSpace``, the kernel's layout), or, later,
/// objects packed at byte granularity into shared blocks.
///
/// Calls come from many threads at once (writeback, and writes that free what
/// they overwrite).
protocol BackingSpace: AnyObject, Sendable {
    /// Room for an object of `bytes` (1...4096).
    /// - Returns: its byte offset in the store, or nil when the store is full.
    func allocate(bytes: Int) -> UInt64?

    /// Gives back the room of an object placed by ``allocate(bytes:)``.
    /// - Returns: a range no object uses any more, for the store to discard; nil if none.
    ///   The range is not allocated again until ``reclaim(_:)``: a discard that ran after
    ///   a new object was written there would wipe it.
    func free(at offset: UInt64, bytes: Int) -> BackingRange?

    /// Makes a range ``free(at:bytes:)`` returned allocatable again, once it is discarded.
    func reclaim(_ range: BackingRange)

    /// Ends a writeback batch's allocations: a layout that shares blocks between
    /// objects starts the next batch in a fresh block, because a batch writes whole
    /// blocks and holds no image of the blocks earlier batches wrote.
    func sealBatch()

    /// 4 KiB blocks of the store that hold objects now (bd_count).
    var blocksInUse: Int { get }

    /// Objects in the store now, and their bytes.
    var objects: Int { get }
    var objectBytes: Int { get }
}

/// A byte range of a backing store.
struct BackingRange: Equatable {
    var offset: UInt64
    var length: UInt64
}
