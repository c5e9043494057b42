#if canImport(Glibc)
import Glibc
#endif

/// A writer-preferring reader/writer lock: I/O holds it shared, control
/// operations that replace the device's state (disksize, reset) hold it
/// exclusively. This mirrors the kernel's `zram->init_lock`.
// @unchecked: the pthread lock lives at a fixed heap address for the object's
// lifetime and pthread_rwlock_* are thread-safe by contract.
final class LifecycleLock: @unchecked Sendable {
    fileprivate let lock: UnsafeMutablePointer<pthread_rwlock_t>

    init() {
        lock = .allocate(capacity: 1)
        var attributes = pthread_rwlockattr_t()
        pthread_rwlockattr_init(&attributes)
        pthread_rwlockattr_setkind_np(&attributes, Int32(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP))
        let status = pthread_rwlock_init(lock, &attributes)
        precondition(status == 0, "pthread_rwlock_init failed: \(status)")
        pthread_rwlockattr_destroy(&attributes)
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }

    @inline(__always)
    func withShared<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }

    func withExclusive<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }
}

extension LifecycleLock {
    /// Whether a writer waits for the lock. Only meaningful while the caller
    /// holds it shared (then no writer can hold it): a writer-preferring lock
    /// refuses a new reader exactly when a writer waits.
    var hasWaitingWriter: Bool {
        guard pthread_rwlock_tryrdlock(lock) == 0 else { return true }
        pthread_rwlock_unlock(lock)
        return false
    }
}
