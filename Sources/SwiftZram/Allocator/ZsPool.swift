import CPlatform
import Synchronization

/// A zsmalloc-like allocator for compressed pages.
///
/// Objects of 1...4096 bytes go to one of the merged size classes of
/// ``SizeClassTable`` (119 of them, the huge class included). Each class
/// has its own lock, zspages and handle table; the store/read/free paths
/// take only that lock (plus the arena's slot lock when a zspage is created
/// or freed). Handles are indirect, so compaction can move objects.
///
/// ``memoryUsed`` counts the pages that zspages have actually touched: a
/// zspage's pages are counted one by one as objects reach them, and all of
/// them stop counting when it is freed. With a reserve (``ReservePolicy``) the
/// pool also holds already-faulted pages that no zspage has touched yet:
/// ``reservePages``, bounded by the policy and not in ``memoryUsed``, so
/// mem_used_total keeps the kernel's meaning (memory holding compressed data).
///
/// Objects have no in-object header: a zspage holds payload bytes only.
/// Metadata lives on the malloc heap and is not counted, as in the kernel:
/// the handle table (8 bytes per id: id → zspage and index), the owner
/// table (4 bytes per object slot of the class's zspage high-water mark:
/// zspage and index → id, used by compaction; ``ObjectOwnerTable``) and
/// the zspage descriptors (32 bytes each), all grown lazily in chunks
/// (1024 entries; 256 for owners). That is about 12 bytes per object plus
/// 32 per zspage, plus up to one partly used chunk per table per class.
public final class ZsPool: Sendable {
    /// Payloads larger than this are not worth compressing: the device stores
    /// such a page raw (4096 bytes) in the huge class.
    ///
    /// 3632 here: the size of the largest normal class (9 objects in 8
    /// pages); objects have no header. The kernel's `huge_class_size` is
    /// 3625 ("at least", with an 8-byte header).
    public static let hugeThreshold: Int = SizeClassTable.hugeThreshold

    let classes: SizeClassStorage
    let arena: PageArena
    /// Touched pages of all zspages (mem_used_total / 4096).
    let pagesHeld = Atomic<Int>(0)
    /// Running total of pages freed by compaction.
    let pagesCompactedTotal = Atomic<Int>(0)

    /// A pool without a reserve: zspage pages fault in as objects reach them and go
    /// back to the OS as soon as their zspage is freed, on the calling thread.
    public convenience init() { self.init(reserve: nil) }

    /// - Parameter reserve: keep already-faulted zspage memory ready so that stores,
    ///   frees and compaction make no memory system call and take no page fault in
    ///   steady state; someone must then run ``maintainReserve()`` when asked (a
    ///   ``ReserveMaintainer`` thread). nil: no reserve.
    public init(reserve: ReservePolicy?) {
        classes = SizeClassStorage()
        arena = PageArena(reserve: reserve)
    }

    deinit {
        classes.destroy()
        // `arena` unmaps every chunk when it is destroyed right after this.
    }

    /// The outcome of a store under a memory limit.
    public enum StoreResult {
        case stored(ObjectHandle)
        /// The pages the object needs would take ``memoryUsed`` past the limit; nothing changed.
        case overLimit
        /// The OS refused memory.
        case outOfMemory
    }

    /// Allocates an object for `bytes.count` (1...4096) payload bytes and
    /// copies them in.
    ///
    /// Payloads above ``hugeThreshold`` go to the huge class: one raw page
    /// per object.
    /// - Returns: the handle, or nil only if the OS refused memory.
    /// - Complexity: O(1); one lock.
    public func store(_ bytes: UnsafeRawBufferPointer) -> ObjectHandle? {
        if case .stored(let handle) = store(bytes, memoryLimit: 0) { return handle }
        return nil
    }

    /// Like ``store(_:)``, but refuses an object whose new pages would take
    /// ``memoryUsed`` past `memoryLimit` bytes (0 means no limit). The pages are
    /// reserved before they are touched, so concurrent stores cannot overshoot
    /// the limit together and a refused store leaves no page behind.
    public func store(_ bytes: UnsafeRawBufferPointer, memoryLimit: Int) -> StoreResult {
        precondition(bytes.count >= 1 && bytes.count <= SizeClassTable.pageSize, "object size \(bytes.count) outside 1...4096")
        let classIndex = SizeClassTable.classIndex(forPayload: bytes.count, rawToMerged: classes.rawToMerged)
        // The payload crosses into the lock as an address: the region checker
        // would otherwise tie the caller's buffer to the guarded state.
        let source = UInt(bitPattern: bytes.baseAddress)
        let count = bytes.count
        let limitPages = memoryLimit / SizeClassTable.pageSize
        let result: (id: UInt32?, overLimit: Bool) = classes.base[classIndex].state.withLock { state in
            let reserved = state.pagesNeededForNextStore()
            guard reserve(reserved, limitPages: limitPages) else { return (nil, true) }
            let before = state.pagesHeld
            let payload = UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: source), count: count)
            let id = state.store(payload, arena: arena)
            let delta = state.pagesHeld - before
            if delta != reserved { pagesHeld.wrappingAdd(delta - reserved, ordering: .relaxed) }
            return (id, false)
        }
        if result.overLimit { return .overLimit }
        guard let id = result.id else { return .outOfMemory }
        return .stored(ObjectHandle(classIndex: classIndex, localId: id))
    }

    /// Adds `pages` to ``pagesHeld`` unless that would pass `limitPages` (0 = no limit).
    @inline(__always)
    private func reserve(_ pages: Int, limitPages: Int) -> Bool {
        guard pages > 0 else { return true }
        guard limitPages > 0 else {
            pagesHeld.wrappingAdd(pages, ordering: .relaxed)
            return true
        }
        var current = pagesHeld.load(ordering: .relaxed)
        while current + pages <= limitPages {
            let (won, now) = pagesHeld.weakCompareExchange(expected: current, desired: current + pages, ordering: .relaxed)
            if won { return true }
            current = now
        }
        return false
    }

    /// Calls `body` with a read-only view of the object's first `size`
    /// payload bytes. The object cannot move (compaction) meanwhile.
    ///
    /// The class lock is not held while `body` runs: the object's zspage is
    /// pinned instead, so other threads keep storing into and freeing from
    /// the class. Do not free `handle` from inside `body`.
    /// - Complexity: O(1) plus `body`; the class lock is taken twice.
    public func withObject<R, E: Error>(
        _ handle: ObjectHandle, size: Int, _ body: (UnsafeRawBufferPointer) throws(E) -> R
    ) throws(E) -> R {
        let object = pin(handle, size: size)
        defer { unpin(object) }
        return try body(object.bytes)
    }

    /// Pins the object's zspage, so compaction leaves it where it is until ``unpin(_:)``.
    /// ``withObject(_:size:_:)`` for callers that look at the next object before they are
    /// done with this one.
    func pin(_ handle: ObjectHandle, size: Int) -> PinnedObject {
        let classIndex = checkedClassIndex(handle)
        let slot = classes.base + classIndex
        precondition(size >= 0 && size <= slot.pointee.info.payloadCapacity, "read of \(size) bytes exceeds the object's class")
        let pinned = slot.pointee.state.withLock { $0.pin(handle.localId) }
        return PinnedObject(
            classIndex: classIndex, zspage: pinned.zspage,
            bytes: UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: pinned.payload), count: size))
    }

    /// Starts loading the first line ``pin(_:size:)`` will wait for: where the handle's
    /// object lives. For readers that will pin it a few microseconds from now.
    func prefetchLocation(of handle: ObjectHandle) {
        classes.base[checkedClassIndex(handle)].state.withLock { $0.prefetchHandle(handle.localId) }
    }

    /// Starts loading the second line ``pin(_:size:)`` will wait for: the object's zspage.
    /// Best after ``prefetchLocation(of:)`` had time to load the first. `handle` must be live.
    func prefetchZspage(of handle: ObjectHandle) {
        classes.base[checkedClassIndex(handle)].state.withLock { $0.prefetchZspage(handle.localId) }
    }

    /// Starts loading what ``free(_:)`` will miss on once the handle's entry is cached
    /// (``prefetchLocation(of:)``): the zspage's descriptor and the object's owner entry.
    /// `handle` must be live.
    func prefetchRelease(of handle: ObjectHandle) {
        classes.base[checkedClassIndex(handle)].state.withLock { $0.prefetchRelease(handle.localId) }
    }

    func unpin(_ object: PinnedObject) {
        classes.base[object.classIndex].state.withLock { $0.unpin(object.zspage) }
    }

    /// Frees the object. May run one bounded automatic compaction step in
    /// its class (see ``SizeClassState/shouldCompactAutomatically``).
    ///
    /// - Complexity: O(1), or O(objectsPerZspage) when it compacts.
    public func free(_ handle: ObjectHandle) {
        let classIndex = checkedClassIndex(handle)
        let (freed, compacted) = classes.base[classIndex].state.withLock {
            state -> (ReleasedZspage?, ReleasedZspage?) in
            let before = state.pagesHeld
            let freed = state.free(handle.localId)
            let compacted = state.shouldCompactAutomatically ? state.compactStep() : nil
            pagesHeld.wrappingAdd(state.pagesHeld - before, ordering: .relaxed)
            return (freed, compacted)
        }
        if let freed { arena.release(freed) }
        if let compacted {
            arena.release(compacted)
            pagesCompactedTotal.wrappingAdd(compacted.touchedPages, ordering: .relaxed)
        }
    }

    /// Bytes of OS pages the pool holds right now (zram's mem_used_total) =
    /// pages held × 4096. Cheap (an atomic load).
    public var memoryUsed: Int { pagesHeld.load(ordering: .relaxed) * SizeClassTable.pageSize }

    /// Already-faulted pages the pool holds beyond ``memoryUsed``: its reserve of free
    /// zspage slots and slots waiting for maintenance (untouched tails of live
    /// zspages that came from the reserve are not included). 0 without a reserve.
    public var reservePages: Int { arena.reservePages }

    /// Refills and gives back the reserve (see ``ReservePolicy``): the only place,
    /// with a reserve, where the pool maps, discards or faults in memory in steady
    /// state. Runs on whichever thread calls it; safe beside stores and frees.
    /// - Returns: pages faulted in and pages given back by this pass.
    @discardableResult
    public func maintainReserve() -> (populated: Int, discarded: Int) {
        let work = arena.maintain()
        return (work.populated, work.discarded)
    }

    /// Running total of pages freed by compaction (zram's pages_compacted).
    public var pagesCompacted: Int { pagesCompactedTotal.load(ordering: .relaxed) }

    /// Per-class diagnostics, one entry per merged class, smallest first.
    ///
    /// - Complexity: O(classes + zspages); takes each class lock in turn.
    public func statistics() -> [ZsPoolClassStatistics] {
        (0..<classes.count).map { index in
            let info = classes.base[index].info
            let (zspages, live, pages) = classes.base[index].state.withLock { state in
                (state.zspageCount, state.liveObjects, state.pagesHeld)
            }
            return ZsPoolClassStatistics(
                classIndex: index, size: info.size, pagesPerZspage: info.pagesPerZspage,
                objectsPerZspage: info.objectsPerZspage, zspages: zspages, liveObjects: live,
                pagesHeld: pages, isHuge: info.isHuge)
        }
    }

    private func checkedClassIndex(_ handle: ObjectHandle) -> Int {
        let classIndex = handle.classIndex
        precondition(classIndex >= 0 && classIndex < classes.count, "invalid handle \(handle.rawValue)")
        return classIndex
    }
}

/// An object ``ZsPool/pin(_:size:)`` holds in place: valid until ``ZsPool/unpin(_:)``.
struct PinnedObject: BitwiseCopyable {
    let classIndex: Int
    let zspage: UInt32
    let bytes: UnsafeRawBufferPointer

    /// Starts loading `bytes[range]` into the cache, all its lines' misses at once.
    func prefetch(_ range: Range<Int>) {
        let range = range.clamped(to: 0..<bytes.count)
        guard let base = bytes.baseAddress, !range.isEmpty else { return }
        cplatform_prefetch(base + range.lowerBound, range.count)
    }
}
