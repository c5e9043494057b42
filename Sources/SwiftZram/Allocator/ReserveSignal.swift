#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// How the request path wakes the reserve's maintenance thread: a POSIX
/// semaphore (a futex: no memory-map lock, no allocation) posted at most once per
/// maintenance pass.
///
/// `request()` posts only when it sets `requested`; the maintainer clears it before
/// each pass, so a request made during a pass posts again and is never lost.
// @unchecked: the semaphore is allocated and initialised in init and destroyed in
// deinit; sem_post and sem_wait are thread-safe; the rest is atomics.
final class ReserveSignal: @unchecked Sendable {
    private let semaphore: UnsafeMutablePointer<sem_t>
    private let requested = Atomic<Bool>(false)
    private let stopping = Atomic<Bool>(false)

    init() {
        semaphore = .allocate(capacity: 1)
        sem_init(semaphore, 0, 0)
    }

    deinit {
        sem_destroy(semaphore)
        semaphore.deallocate()
    }

    /// Asks for a maintenance pass (cheap when one is already asked for).
    @inline(__always)
    func request() {
        if requested.load(ordering: .relaxed) { return }
        if !requested.exchange(true, ordering: .sequentiallyConsistent) {
            sem_post(semaphore)
        }
    }

    /// Stops the maintainer after its current pass.
    func stop() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        sem_post(semaphore)
    }

    /// The maintainer's wait: returns false once ``stop()`` was called.
    func waitForRequest() -> Bool {
        while sem_wait(semaphore) != 0 {}  // EINTR: wait again
        if stopping.load(ordering: .sequentiallyConsistent) { return false }
        requested.store(false, ordering: .sequentiallyConsistent)
        return true
    }
}
