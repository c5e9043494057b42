/// Compaction inside one size class: moving objects out of the least-used
/// zspage into the fullest ones, so the drained zspage can be freed.
extension SizeClassState {
    /// The automatic compaction rule, checked after every free in a normal
    /// class: compact when at least one zspage could be freed by packing
    /// the live objects tightly *and* that is at least 1/8 of the class's
    /// zspages (`freeable >= 1 && freeable * 8 >= zspages`).
    ///
    /// Each triggered free then drains at most one zspage (at most
    /// `objectsPerZspage` moves, at most 32 KiB copied), so the work per
    /// call is bounded, and fragmentation is held near 1/8 of a class
    /// even under churn; ``ZsPool/compact()`` goes all the way.
    var shouldCompactAutomatically: Bool {
        guard !isHuge else { return false }
        let freeable = freeableZspages
        return freeable >= 1 && freeable * 8 >= zspageCount
    }

    /// Drains the least-used unpinned zspage into the fullest other ones.
    ///
    /// Needs `freeableZspages >= 1`: then the other zspages have at least
    /// `objectsPerZspage` free objects, more than the least-used zspage
    /// holds, so the drain always completes.
    ///
    /// - Returns: the emptied zspage, or nil if nothing could be freed (no
    ///   freeable zspage, or every candidate is pinned by a reader).
    /// - Complexity: O(objectsPerZspage).
    mutating func compactStep() -> ReleasedZspage? {
        guard !isHuge, freeableZspages >= 1, let source = leastUsedUnpinned() else { return nil }
        let sourceBase = zspages[Int(source)].baseAddress
        let bump = UInt32(zspages[Int(source)].bump)
        var index: UInt32 = 0
        while index < bump {
            if let owner = owners.owner(source, index) {
                let object = sourceBase + Int(index) * size
                guard let target = fullestNonFull(excluding: source) else {
                    preconditionFailure("freeable zspages exist, so another zspage must have room")
                }
                let newIndex = takeObject(target)
                objectAddress(target, newIndex).copyMemory(from: object, byteCount: size)
                owners.setOwner(target, newIndex, owner)
                handles.move(owner, to: ObjectLocation(zspage: target, index: newIndex))
                if let released = releaseObject(ObjectLocation(zspage: source, index: index)) {
                    return released
                }
            }
            index += 1
        }
        preconditionFailure("zspage \(source) still in use after all its objects moved")
    }
}
