#if canImport(Glibc)
import Glibc
#endif
import Platform
import SystemPackage
import Synchronization

/// The policy thread of a device with tiering on (`zram-tier` in `top -H`): runs a
/// pass every `tiering_interval` seconds until stopped. Stopping wakes it at once;
/// it ends after the pass in progress, whose batches each hold the lifecycle lock
/// only briefly and stop when the device is reset.
final class TieringWorker: Sendable {
    static let threadName = "zram-tier"

    private let wakeup: TieringWakeup
    private let thread: PosixThread

    /// - Parameters:
    ///   - interval: seconds to wait before each pass, read before every wait.
    ///   - start: runs first on the thread (e.g. to mark it an I/O flusher).
    ///   - pass: one policy pass.
    init(
        interval: @escaping @Sendable () -> UInt64, start: (@Sendable () -> Void)?,
        pass: @escaping @Sendable () -> Void
    ) throws(Errno) {
        let wakeup = TieringWakeup()
        self.wakeup = wakeup
        thread = try PosixThread.spawn(name: Self.threadName) {
            start?()
            while wakeup.wait(seconds: interval()) { pass() }
        }
    }

    /// Stops the thread after its current pass and waits for it.
    func stop() {
        wakeup.stop()
        thread.join()
    }
}

/// The policy thread's sleep, cut short to stop it.
final class TieringWakeup: Sendable {
    private let semaphore = PosixSemaphore()
    private let stopping = Atomic<Bool>(false)

    func stop() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        semaphore.post()
    }

    /// Sleeps `seconds` (or until stopped). - Returns: false once stopped.
    func wait(seconds: UInt64) -> Bool {
        if !stopping.load(ordering: .sequentiallyConsistent) { _ = semaphore.wait(seconds: seconds) }
        return !stopping.load(ordering: .sequentiallyConsistent)
    }
}
