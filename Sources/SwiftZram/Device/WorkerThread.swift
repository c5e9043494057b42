#if canImport(Glibc)
import Glibc
#endif

/// A joinable POSIX thread running one closure.
// @unchecked: the thread id is written once in init and read only by join().
final class WorkerThread: @unchecked Sendable {
    private var thread = pthread_t()
    private var joined = false

    init(_ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        let status = pthread_create(&thread, nil, { context in
            let body = Unmanaged<Box>.fromOpaque(context!).takeRetainedValue().body
            body()
            return nil
        }, box)
        precondition(status == 0, "pthread_create failed: \(status)")
    }

    /// Waits for the closure to return.
    func join() {
        guard !joined else { return }
        joined = true
        pthread_join(thread, nil)
    }

    private final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
}
