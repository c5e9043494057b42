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
        var cursor = 0
        var freedPages = 0
        while cursor < classes.count { freedPages += compact(steps: Int.max, cursor: &cursor) }
        return freedPages
    }

    /// A bounded piece of ``compact()``: frees at most `steps` zspages, starting in
    /// class `cursor` and moving it on; `cursor` reaches the class count when done.
    /// - Returns: pages freed by this call (also added to ``pagesCompacted``).
    func compact(steps: Int, cursor: inout Int) -> Int {
        var freedPages = 0
        var taken = 0
        while cursor < classes.count, taken < steps {
            if !classes.base[cursor].info.isHuge, let released = compactStep(cursor) {
                arena.release(released)
                freedPages += released.touchedPages
                taken += 1
            } else {
                cursor += 1
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
