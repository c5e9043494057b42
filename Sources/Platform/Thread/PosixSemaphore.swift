import CPlatform
#if canImport(Glibc)
import Glibc
#endif

/// A process-private POSIX semaphore: a futex underneath, so posting takes no
/// memory-map lock and allocates nothing. Threads use it to wake one another.
// @unchecked: the semaphore lives at a fixed heap address from init to deinit, and
// sem_post, sem_wait and sem_clockwait are thread-safe by contract.
public final class PosixSemaphore: @unchecked Sendable {
    private let semaphore: UnsafeMutablePointer<sem_t>

    public init() {
        semaphore = .allocate(capacity: 1)
        sem_init(semaphore, 0, 0)
    }

    deinit {
        sem_destroy(semaphore)
        semaphore.deallocate()
    }

    /// Wakes one waiter, or the next one to wait.
    @inline(__always)
    public func post() { sem_post(semaphore) }

    /// Waits for a post.
    public func wait() {
        while sem_wait(semaphore) != 0 {}  // EINTR: wait again
    }

    /// Waits for a post for at most `seconds` on the monotonic clock.
    /// - Returns: false when the time ran out first.
    public func wait(seconds: UInt64) -> Bool {
        // A wait cut short by a signal starts again with a fresh deadline: it only lengthens the sleep.
        while cplatform_semaphore_wait_seconds(semaphore, UInt32(min(seconds, UInt64(Int32.max)))) != 0 {
            if errno != EINTR { return false }
        }
        return true
    }
}
