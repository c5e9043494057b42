/// Whole pages read one page ahead.
///
/// After random overwrites, neighbouring pages' objects lie scattered over the pool, so a
/// long read waits on cache misses (handle, zspage, object lines) page after page. Here
/// page i+1 is locked and its object pinned, which starts those misses, before page i
/// decompresses, so they overlap its work.
///
/// Lock order in the store: page locks (two at once only here, in ascending page order),
/// then a compression stream, then a size class's lock. A thread holding a stream or a
/// class lock never waits for a page lock, so holding two page locks cannot deadlock.
extension ZramStore {
    /// A locked page and, when it holds a compressed object in memory, that object pinned.
    private struct LockedPage {
        let slot: UnsafeMutablePointer<PageSlot>?
        let state: PageState
        let payload: UInt64
        let object: PinnedObject?
    }

    /// Reads pages `first..<first + count` whole into `buffer`.
    func readWholePages(_ first: Int, count: Int, into buffer: UnsafeMutableRawPointer) throws(ZramError) {
        let end = first + count
        var index = first
        var current = lockPage(index)
        while true {
            let destination = UnsafeMutableRawBufferPointer(start: buffer + (index - first) * pageSize, count: pageSize)
            // Look ahead only from a page decoded in memory, never across backing-device I/O.
            let next = index + 1 < end && current.object != nil ? lockPage(index + 1) : nil
            do {
                try read(current, into: destination)
            } catch {
                unlock(current)
                if let next { unlock(next) }
                throw error
            }
            unlock(current)
            index += 1
            guard index < end else { return }
            current = next ?? lockPage(index)
        }
    }

    private func lockPage(_ index: Int) -> LockedPage {
        guard let slot = table.existingSlot(index) else {
            return LockedPage(slot: nil, state: .empty, payload: 0, object: nil)
        }
        let state = slot.lock()
        let payload = slot.pointee.payload
        // The pages `readLocked` decodes from a pool object.
        let inMemoryObject = state.hasObject && !state.isLost && !state.isWrittenBack && !state.isQueued && !state.isSame
        let object = inMemoryObject ? pool.pin(ObjectHandle(rawValue: payload), size: state.objectSize) : nil
        return LockedPage(slot: slot, state: state, payload: payload, object: object)
    }

    private func unlock(_ page: LockedPage) {
        if let object = page.object { pool.unpin(object) }
        page.slot?.unlock(setting: page.state.accessed(at: clock.now))
    }

    private func read(_ page: LockedPage, into destination: UnsafeMutableRawBufferPointer) throws(ZramError) {
        if let object = page.object {
            try decodeObject(object.bytes, state: page.state, into: destination)
        } else if page.slot == nil {
            SameFilledPage.fill(destination, with: 0, phase: 0)
        } else {
            try readLocked(page.state, payload: page.payload, into: destination, at: 0)
        }
    }
}
