/// Recompression of one page at a time, as zram's `recompress_slot`: decompress the
/// stored object, try the recompression algorithms in priority order, and keep the
/// first result that lands in a smaller size class (and under the threshold).
///
/// The page's lock is held only to choose it and to read or replace its object;
/// compression runs with no lock held, so I/O to the page goes on meanwhile. A page
/// written, discarded or written back meanwhile loses ``PageState/postProcessBit``,
/// and its recompressed copy is then dropped: the newer data wins.
extension ZramStore {
    /// What one recompression run looks for and may use.
    struct RecompressionPlan {
        /// Only idle pages (`type=idle`, `huge_idle`).
        var idleOnly = false
        /// Only huge pages (`type=huge`, `huge_idle`).
        var hugeOnly = false
        /// Objects smaller than this are left alone, and a result must be smaller; 0 for none.
        var threshold = 0
        /// The first priority to try (1...3).
        var firstPriority = 1
        /// One past the last priority to try.
        var priorityLimit = 1
        /// Whether `priorityLimit - 1` is the highest configured priority, so that failing
        /// every priority marks the page incompressible.
        var reachesHighest = true
        /// Runs with the page's new copy made and no lock held, just before it is installed (tests).
        var beforeInstalling: ((Int) -> Void)?
    }

    /// What recompressing one page came to.
    enum RecompressionOutcome: Equatable {
        /// Not tried (changed since it was chosen, under the threshold, or nothing left to try).
        case skipped
        /// Tried; `saved` compressed bytes when a smaller copy replaced the object.
        case attempted(saved: Int)
    }

    /// Marks page `index` as chosen if a run with `plan` should recompress it.
    /// - Returns: its object size, or nil if it is not a candidate.
    func chooseForRecompression(_ index: Int, slot: UnsafeMutablePointer<PageSlot>, plan: RecompressionPlan) -> Int? {
        let state = slot.lock()
        guard state.hasObject, !state.isWrittenBack, !state.isIncompressible,
            !plan.idleOnly || state.isIdle, !plan.hugeOnly || state.isHuge,
            state.priority + 1 < plan.priorityLimit
        else {
            slot.unlock(setting: state)
            return nil
        }
        slot.unlock(setting: PageState(rawValue: state.rawValue | PageState.postProcessBit))
        return state.objectSize
    }

    /// Clears the mark ``chooseForRecompression(_:slot:plan:)`` set, if the page still has it.
    func releaseRecompressionChoice(_ index: Int) {
        guard let slot = table.existingSlot(index) else { return }
        let state = slot.lock()
        slot.unlock(setting: PageState(rawValue: state.rawValue & ~PageState.postProcessBit))
    }

    /// Recompresses page `index` if it is still as it was chosen.
    /// - Parameter page: a 4096-byte buffer of the caller's for the decompressed page.
    /// - Throws: `EIO` if the stored object does not decompress, `ENOMEM` if the
    ///   system refuses memory for the new object; the page then keeps its old object.
    func recompress(_ index: Int, plan: RecompressionPlan, page: UnsafeMutableRawBufferPointer) throws(ZramError) -> RecompressionOutcome {
        guard let slot = table.existingSlot(index) else { return .skipped }
        let state = slot.lock()
        guard state.isPostProcessing, state.hasObject else {
            slot.unlock(setting: state)
            return .skipped
        }
        let oldSize = state.objectSize
        let firstPriority = max(plan.firstPriority, state.priority + 1)
        if (plan.threshold > 0 && oldSize < plan.threshold) || firstPriority >= plan.priorityLimit {
            slot.unlock(setting: PageState(rawValue: state.rawValue & ~PageState.postProcessBit))
            return .skipped
        }
        let payload = slot.pointee.payload
        do {
            try decode(state, payload: payload, into: page)
        } catch {
            slot.unlock(setting: PageState(rawValue: state.rawValue & ~PageState.postProcessBit))
            throw error
        }
        // Touched: no longer idle, so a later writeback of idle pages does not pick it (as zram).
        slot.unlock(setting: state.withoutIdle)

        let oldClass = pool.sizeClass(forPayload: oldSize)
        var replacement: (handle: ObjectHandle, size: Int, priority: Int)?
        var refused = false
        for priority in firstPriority..<plan.priorityLimit {
            guard let compressors = recompressors[priority] else { continue }
            compressors.withStream { stream in
                let compressed = stream.compress(UnsafeRawBufferPointer(page))
                guard pool.sizeClass(forPayload: compressed.count) < oldClass,
                    plan.threshold == 0 || compressed.count < plan.threshold
                else { return }
                switch pool.store(compressed, memoryLimit: 0) {
                case .stored(let handle): replacement = (handle, compressed.count, priority)
                case .overLimit, .outOfMemory: refused = true
                }
            }
            if replacement != nil || refused { break }
        }

        plan.beforeInstalling?(index)
        let current = slot.lock()
        guard current.isPostProcessing, current.hasObject, slot.pointee.payload == payload else {
            // Written, discarded or written back meanwhile: the newer state wins.
            slot.unlock(setting: current)
            if let replacement { pool.free(replacement.handle) }
            return .attempted(saved: 0)
        }
        guard let replacement else {
            var failed = current.rawValue & ~PageState.postProcessBit
            if plan.reachesHighest && !refused { failed |= PageState.incompressibleBit }
            slot.unlock(setting: PageState(rawValue: failed))
            if refused { throw ZramError(.outOfMemory, "the system refused memory for a recompressed page") }
            return .attempted(saved: 0)
        }
        let stored = PageState(
            rawValue: PageState.object(size: replacement.size, huge: false).rawValue
                | UInt64(replacement.priority) << PageState.priorityShift
                | (current.rawValue & (PageState.accessTimeMask | PageState.idleBit)))
        slot.pointee.payload = replacement.handle.rawValue
        slot.unlock(setting: stored)
        counters.record(stored)
        counters.forget(current)
        pool.free(ObjectHandle(rawValue: payload))
        let saved = oldSize - replacement.size
        counters.recompressedPages.wrappingAdd(1, ordering: .relaxed)
        counters.recompressionSavedBytes.wrappingAdd(saved, ordering: .relaxed)
        counters.notePeak(memoryUsed)
        return .attempted(saved: saved)
    }
}

extension ZsPool {
    /// The size class an object of `length` bytes (1...4096) goes to; a smaller index is a smaller class.
    func sizeClass(forPayload length: Int) -> Int {
        SizeClassTable.classIndex(forPayload: length, rawToMerged: classes.rawToMerged)
    }
}
