import CPlatform
import SystemPackage

/// Memory locking beyond what Glibc's Swift module exports.
public enum MemoryLock {
    /// `mlock2(base, bytes, MLOCK_ONFAULT)`: locks pages as they fault in, so a range
    /// that was just discarded stays non-resident (a plain `mlock` would populate it).
    public static func lockOnFault(_ base: UnsafeMutableRawPointer, _ bytes: Int) throws(Errno) {
        try valueOrErrno { cplatform_mlock_on_fault(base, bytes) }
    }

    /// `madvise(base, bytes, MADV_DONTNEED_LOCKED)`: drops the pages of a locked range in
    /// one call and leaves it locked, so later faults lock again (Linux 5.18+).
    /// - Throws: `EINVAL` on older kernels.
    public static func discardLocked(_ base: UnsafeMutableRawPointer, _ bytes: Int) throws(Errno) {
        try valueOrErrno { cplatform_madvise_dontneed_locked(base, bytes) }
    }
}
