import Platform
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Thin wrappers over the system calls that move memory between the pool
/// and the OS.
///
/// Every one of them takes the process's memory-map lock (`mmap_lock`), and
/// ``populate(_:pages:)`` faults pages in, which takes it too and may enter
/// direct reclaim. With a reserve (``ReservePolicy``) only the maintenance
/// thread calls them in steady state; see ``PageArena``.
enum OSMemory {
    /// Reserves `bytes` of zero-filled, not-yet-resident virtual memory.
    ///
    /// `MAP_NORESERVE`: nothing is committed until a page is touched.
    /// - Returns: the base, or nil if the OS refused.
    static func reserve(_ bytes: Int) -> UnsafeMutableRawPointer? {
        let address = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let address, address != MAP_FAILED else { return nil }
        return address
    }

    /// Returns a reservation made by ``reserve(_:)``.
    static func unreserve(_ base: UnsafeMutableRawPointer, _ bytes: Int) {
        let result = munmap(base, bytes)
        precondition(result == 0, "munmap of a pool chunk failed: errno \(errno)")
    }

    /// How ``discard(_:_:mode:)`` gives locked pages back, learnt on first use.
    enum DiscardMode: UInt8, AtomicRepresentable {
        /// Not known yet: try a plain `madvise(MADV_DONTNEED)`.
        case plain
        /// The pages are locked; `madvise(MADV_DONTNEED_LOCKED)` works.
        case lockedInOneCall
        /// The pages are locked and the kernel predates `MADV_DONTNEED_LOCKED`.
        case unlockDiscardRelock
    }

    /// Gives the pages of `[base, base + bytes)` back to the OS; they read as
    /// zeros afterwards and no longer count in the process's RSS.
    ///
    /// `madvise(MADV_DONTNEED)` fails with `EINVAL` on locked pages (the
    /// server runs under `mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)`).
    /// Then `MADV_DONTNEED_LOCKED` drops them and leaves the range locked; on
    /// kernels without it (before 5.18) the range is unlocked, discarded and
    /// relocked with `MLOCK_ONFAULT`. `mode` remembers which works, so later
    /// calls go straight to it.
    static func discard(_ base: UnsafeMutableRawPointer, _ bytes: Int, mode: borrowing Atomic<DiscardMode>) {
        switch mode.load(ordering: .relaxed) {
        case .plain:
            if madvise(base, bytes, MADV_DONTNEED) == 0 { return }
            guard errno == EINVAL else { return }  // best effort: the pages stay, still usable
            if (try? MemoryLock.discardLocked(base, bytes)) != nil {
                mode.store(.lockedInOneCall, ordering: .relaxed)
                return
            }
            mode.store(.unlockDiscardRelock, ordering: .relaxed)
        case .lockedInOneCall:
            _ = try? MemoryLock.discardLocked(base, bytes)
            return
        case .unlockDiscardRelock:
            break
        }
        _ = munlock(base, bytes)
        _ = madvise(base, bytes, MADV_DONTNEED)
        relockOnFault(base, bytes)
    }

    /// `mlock2(base, bytes, MLOCK_ONFAULT)`: locks pages as they fault in, so
    /// the discarded range stays non-resident. If the OS refuses, the range is
    /// left unlocked (a plain `mlock` would populate it).
    static func relockOnFault(_ base: UnsafeMutableRawPointer, _ bytes: Int) {
        try? MemoryLock.lockOnFault(base, bytes)
    }

    /// Faults in pages `resident..<pages` of the range at `base` by writing a
    /// zero to each (they are zeros already: never touched, or discarded), so
    /// they are resident, and locked under `MCL_ONFAULT`, before a zspage uses them.
    static func populate(_ base: UnsafeMutableRawPointer, from resident: Int = 0, pages: Int) {
        var page = resident
        while page < pages {
            storeZero(base + page * SizeClassTable.pageSize)
            page += 1
        }
    }

    /// Out of line so that the store is never dropped: nothing reads it back. A write
    /// (not a read, which would map the shared zero page) allocates the page.
    @inline(never)
    private static func storeZero(_ address: UnsafeMutableRawPointer) {
        address.storeBytes(of: 0, as: UInt8.self)
    }
}
