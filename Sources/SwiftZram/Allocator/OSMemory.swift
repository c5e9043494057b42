import Platform
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Thin wrappers over the system calls that move memory between the pool
/// and the OS.
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

    /// Gives the pages of `[base, base + bytes)` back to the OS; they read as
    /// zeros afterwards and no longer count in the process's RSS.
    ///
    /// `madvise(MADV_DONTNEED)` fails with `EINVAL` on locked pages (the
    /// server runs under `mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)`).
    /// Then the range is unlocked, discarded and relocked with
    /// `MLOCK_ONFAULT`, and `locked` remembers it so that later calls go
    /// straight to that path; the unlocked fast path is one system call.
    static func discard(_ base: UnsafeMutableRawPointer, _ bytes: Int, locked: borrowing Atomic<Bool>) {
        if !locked.load(ordering: .relaxed) {
            if madvise(base, bytes, MADV_DONTNEED) == 0 { return }
            guard errno == EINVAL else { return }  // best effort: the pages stay, still usable
            locked.store(true, ordering: .relaxed)
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
}
