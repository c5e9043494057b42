/// Explicit compaction (zram's `compact` attribute).
extension ZsPool {
    /// Compacts every class now: in each, drains least-used zspages into the
    /// fullest ones until no zspage can be freed, then frees the emptied ones.
    ///
    /// The class lock is dropped between zspages, so stores, reads and frees
    /// proceed meanwhile. Zspages pinned by readers are skipped.
    /// - Returns: pages freed by this call (also added to ``pagesCompacted``).
    /// - Complexity: O(objects moved).
    @discardableResult
    public func compact() -> Int {
        var freedPages = 0
        for classIndex in 0..<classes.count where !classes.base[classIndex].info.isHuge {
            while let released = compactStep(classIndex) {
                arena.releaseSlot(released.slotAddress, touchedPages: released.touchedPages)
                freedPages += released.touchedPages
            }
        }
        pagesCompactedTotal.wrappingAdd(freedPages, ordering: .relaxed)
        return freedPages
    }

    /// One zspage's worth of compaction in one class, under its lock.
    private func compactStep(_ classIndex: Int) -> ReleasedZspage? {
        classes.base[classIndex].state.withLock { state in
            let before = state.pagesHeld
            let released = state.compactStep()
            pagesHeld.wrappingAdd(state.pagesHeld - before, ordering: .relaxed)
            return released
        }
    }
}
