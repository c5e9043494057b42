/// Whole pages read a few pages ahead.
///
/// After random overwrites, neighbouring pages' objects lie scattered over the pool, so a
/// long read would wait on cache misses page after page: the handle entry, then the
/// zspage descriptor it names, then the object's 20 to 60 lines. Here the pages ahead of
/// the one being decoded are locked and walk through those loads one stage per page
/// decoded: four pages ahead the handle entry is prefetched, three ahead the descriptor,
/// two ahead the object is pinned and its first lines prefetched, one ahead the rest.
/// Each miss then overlaps a page's decompression instead of following it, and no burst
/// of prefetches is longer than the core can keep in flight.
///
/// Lock order in the store: page locks (several at once only here, in ascending page
/// order), then a compression stream, then a size class's lock. A thread holding a
/// stream or a class lock never waits for a page lock, so holding several page locks
/// cannot deadlock.
extension ZramStore {
    /// Pages locked beyond the one being decoded.
    static let readAheadDistance = 4
    /// Object bytes prefetched two pages ahead; the rest follow one page ahead.
    static let earlyPrefetchBytes = 1024

    /// A locked page, and how far its object has been brought towards the cache.
    private struct LockedPage {
        var slot: UnsafeMutablePointer<PageSlot>?
        var state = PageState.empty
        var payload: UInt64 = 0
        /// Decoded from a pool object in memory: the only pages read ahead of.
        var inMemoryObject = false
        var stage = Stage.locked
        var object: PinnedObject?

        enum Stage: Int, Comparable {
            /// Pinned in `objectHeadLoading` and `objectLoading`: its first ``earlyPrefetchBytes``
            /// loading, then all of it.
            case locked, locationLoading, zspageLoading, objectHeadLoading, objectLoading
            static func < (a: Stage, b: Stage) -> Bool { a.rawValue < b.rawValue }

            /// Where a page `distance` pages ahead of the one being decoded should be.
            init(distance: Int) {
                switch distance {
                case ...1: self = .objectLoading
                case 2: self = .objectHeadLoading
                case 3: self = .zspageLoading
                default: self = .locationLoading
                }
            }
        }
    }

    /// Reads pages `first..<first + count` whole into `buffer`.
    func readWholePages(_ first: Int, count: Int, into buffer: UnsafeMutableRawPointer) throws(ZramError) {
        let end = first + count
        // Pages index..<lockedEnd are locked; page p sits at window[p % window.count].
        var window = InlineArray<8, LockedPage>(repeating: LockedPage())
        precondition(Self.readAheadDistance < window.count, "the window holds the page decoded and those ahead")
        var lockedEnd = first
        for index in first..<end {
            // Look ahead only across pages decoded in memory, never across backing-device I/O.
            while lockedEnd < min(end, index + Self.readAheadDistance + 1),
                lockedEnd == index || window[(lockedEnd - 1) % window.count].inMemoryObject
            {
                window[lockedEnd % window.count] = lockPage(lockedEnd)
                lockedEnd += 1
            }
            // Farthest first, so its loads have the longest to complete.
            for page in stride(from: lockedEnd - 1, through: index, by: -1) {
                advance(&window[page % window.count], to: LockedPage.Stage(distance: page - index))
            }
            let current = window[index % window.count]
            let destination = UnsafeMutableRawBufferPointer(start: buffer + (index - first) * pageSize, count: pageSize)
            do {
                try read(current, into: destination)
            } catch {
                for page in index..<lockedEnd { unlock(window[page % window.count]) }
                throw error
            }
            unlock(current)
        }
    }

    private func lockPage(_ index: Int) -> LockedPage {
        guard let slot = table.existingSlot(index) else { return LockedPage() }
        let state = slot.lock()
        // The pages `readLocked` decodes from a pool object.
        let inMemoryObject = state.hasObject && !state.isLost && !state.isWrittenBack && !state.isQueued && !state.isSame
        return LockedPage(slot: slot, state: state, payload: slot.pointee.payload, inMemoryObject: inMemoryObject)
    }

    /// Takes the page's object to `target`, skipping the prefetches a pin makes moot.
    private func advance(_ page: inout LockedPage, to target: LockedPage.Stage) {
        guard page.inMemoryObject, page.stage < target else { return }
        let handle = ObjectHandle(rawValue: page.payload)
        switch target {
        case .objectHeadLoading, .objectLoading:
            let object = page.object ?? pool.pin(handle, size: page.state.objectSize)
            page.object = object
            let from = page.stage == .objectHeadLoading ? Self.earlyPrefetchBytes : 0
            let to = target == .objectHeadLoading ? Self.earlyPrefetchBytes : Int.max
            object.prefetch(from..<to)
        case .zspageLoading: pool.prefetchZspage(of: handle)
        case .locationLoading: pool.prefetchLocation(of: handle)
        case .locked: break
        }
        page.stage = target
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
