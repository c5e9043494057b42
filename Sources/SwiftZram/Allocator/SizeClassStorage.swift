import Synchronization

/// One merged size class: fixed geometry plus lock-guarded state.
struct SizeClassSlot: ~Copyable {
    let info: SizeClassInfo
    let state: ClassLock<SizeClassState>
}

/// The pool's fixed array of size classes and its payload-size lookup.
///
/// `@unchecked Sendable`: both buffers are allocated and initialised in
/// `init`, never reallocated, and freed only by the owning pool's `deinit`;
/// after `init` they are only read, and every mutable byte reachable from
/// them sits behind a class's `ClassLock`.
struct SizeClassStorage: @unchecked Sendable {
    let base: UnsafeMutablePointer<SizeClassSlot>
    let count: Int
    /// Raw class index (payload size in ``SizeClassTable/sizeDelta`` steps) → merged class.
    let rawToMerged: UnsafeMutablePointer<UInt8>

    init() {
        let infos = SizeClassTable.classes
        precondition(infos.count <= Int(UInt8.max), "merged class index must fit in a byte")
        count = infos.count
        base = .allocate(capacity: infos.count)
        for (index, info) in infos.enumerated() {
            (base + index).initialize(to: SizeClassSlot(info: info, state: ClassLock(SizeClassState(info))))
        }
        let mapping = SizeClassTable.rawToMerged
        rawToMerged = .allocate(capacity: mapping.count)
        for (index, merged) in mapping.enumerated() { rawToMerged[index] = UInt8(merged) }
    }

    /// Frees the metadata of every class. Only the owning pool's `deinit` calls this.
    func destroy() {
        base.deinitialize(count: count)
        base.deallocate()
        rawToMerged.deallocate()
    }
}
