import Platform
import SystemPackage

/// The thread that keeps a pool's reserve (``ReservePolicy``): it sleeps until the
/// request path asks (a reserve fell below its low water mark, rose above its high
/// one, or a slot waits to be completed or given back), then runs
/// ``ZsPool/maintainReserve()``. Every memory system call and first touch of a pool
/// with a reserve happens here, so this thread, not a request thread, is the one that
/// waits for the memory-map lock or enters reclaim.
final class ReserveMaintainer: Sendable {
    /// The thread's name in `top -H`, `ps -L` and `perf`.
    static let threadName = "zram-reserve"

    private let signal: ReserveSignal
    private let thread: PosixThread

    /// Starts the thread.
    /// - Parameters:
    ///   - pool: a pool made with a reserve.
    ///   - start: runs first on the thread (e.g. to mark it an I/O flusher, so its
    ///     reclaim never waits for the swap device it serves).
    /// - Throws: `pthread_create`'s error.
    init(pool: ZsPool, start: (@Sendable () -> Void)? = nil) throws(Errno) {
        guard let signal = pool.arena.signal else { preconditionFailure("ReserveMaintainer needs a pool with a reserve") }
        self.signal = signal
        thread = try PosixThread.spawn(name: Self.threadName) {
            start?()
            while signal.waitForRequest() { pool.maintainReserve() }
        }
    }

    /// Stops the thread after its current pass and waits for it.
    func stop() {
        signal.stop()
        thread.join()
    }

    deinit { stop() }
}
