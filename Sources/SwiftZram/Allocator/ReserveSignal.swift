#if canImport(Glibc)
import Glibc
#endif
import Platform
import Synchronization

/// How the request path wakes the reserve's maintenance thread: a semaphore
/// posted at most once per maintenance pass.
///
/// `request()` posts only when it sets `requested`; the maintainer clears it before
/// each pass, so a request made during a pass posts again and is never lost.
final class ReserveSignal: Sendable {
    private let semaphore = PosixSemaphore()
    private let requested = Atomic<Bool>(false)
    private let stopping = Atomic<Bool>(false)

    /// Asks for a maintenance pass (cheap when one is already asked for).
    @inline(__always)
    func request() {
        if requested.load(ordering: .relaxed) { return }
        if !requested.exchange(true, ordering: .sequentiallyConsistent) {
            semaphore.post()
        }
    }

    /// Stops the maintainer after its current pass.
    func stop() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        semaphore.post()
    }

    /// The maintainer's wait: returns false once ``stop()`` was called.
    func waitForRequest() -> Bool {
        semaphore.wait()
        if stopping.load(ordering: .sequentiallyConsistent) { return false }
        requested.store(false, ordering: .sequentiallyConsistent)
        return true
    }
}
