import Platform
import Synchronization
import SystemPackage

/// Threads for connections, kept parked for a while after their connection ends so
/// that the next connection runs on one of them.
///
/// Why: state a library keeps per thread and never frees when the thread exits then
/// costs once per thread instead of once per connection. GnuTLS 3.7 (Debian 12) keeps
/// about 190 bytes of random-generator state per thread that ran a TLS handshake;
/// with a new thread per connection, memory grew with every TLS connection ever
/// made. Now it grows only with the most connections open at once (which the
/// listeners' limits bound), plus one thread's worth per ``idleSeconds`` of quiet.
///
/// Parked threads wait on one semaphore. Under `state`, parked threads always number
/// `idle` plus the jobs queued: a job handed over always finds a thread, and a thread
/// whose wait timed out leaves only when no queued job is owed to it.
final class ConnectionThreads: Sendable {
    /// How long a thread stays parked without a connection before it exits.
    static let idleSeconds: UInt64 = 300

    private struct Job {
        let name: String
        let body: @Sendable () -> Void
    }

    private struct State {
        var idle = 0
        /// nil: the parked thread that takes it exits (``stop()``).
        var jobs: [Job?] = []
        var stopping = false
    }

    private let state = Mutex(State())
    private let wake = PosixSemaphore()
    private let stackSize: Int

    init(stackSize: Int) { self.stackSize = stackSize }

    /// Runs `body` on a parked thread, renamed `name`, or on a new thread of that name.
    /// - Throws: `pthread_create`'s error when a new thread was needed and could not start.
    func run(name: String, _ body: @escaping @Sendable () -> Void) throws(Errno) {
        let handed = state.withLock { state in
            guard state.idle > 0 else { return false }
            state.idle -= 1
            state.jobs.append(Job(name: name, body: body))
            return true
        }
        if handed {
            wake.post()
            return
        }
        // Taken out by the thread, so a parked thread holds no connection's closure
        // (nor the server it captured).
        let first = Mutex<Job?>(Job(name: name, body: body))
        try PosixThread.detach(name: name, stackSize: stackSize) { [self] in
            var job = first.withLock { $0.take() }
            while job != nil {
                // Handed over, not borrowed: nothing of the job is held while parked.
                Self.serve(job.take()!)
                job = nextJob()
            }
        }
    }

    private static func serve(_ job: consuming Job) {
        PosixThread.setCurrentName(job.name)
        job.body()
    }

    /// Threads parked now, waiting for a connection.
    var parked: Int { state.withLock { $0.idle } }

    /// Wakes every parked thread to exit, and lets no thread park again.
    func stop() {
        let parked = state.withLock { state in
            defer { state.idle = 0 }
            state.stopping = true
            state.jobs.append(contentsOf: repeatElement(nil, count: state.idle))
            return state.idle
        }
        for _ in 0..<parked { wake.post() }
    }

    /// Parks until a job is handed over; nil when none came in time, or on stop.
    private func nextJob() -> Job? {
        let parking = state.withLock { state in
            if state.stopping { return false }
            state.idle += 1
            return true
        }
        guard parking else { return nil }
        if !wake.wait(seconds: Self.idleSeconds) {
            let leaving = state.withLock { state in
                guard state.idle > 0 else { return false }
                state.idle -= 1
                return true
            }
            if leaving { return nil }
            wake.wait()  // every parked thread is owed a queued job: this one's post is coming
        }
        return state.withLock { $0.jobs.removeFirst() }
    }
}
