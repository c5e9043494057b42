import CPlatform
import Synchronization
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A named POSIX thread running one closure: the one thread type of SwiftZram, NBD and znbd.
///
/// ``spawn(name:stackSize:_:)`` starts a joinable thread; ``detach(name:stackSize:_:)``
/// starts one that nobody waits for. The name shows in `top -H`, `ps -L`, `perf` and
/// `/proc/PID/task/TID/comm` (the kernel keeps 15 bytes of it).
public final class PosixThread: Sendable {
    private let handle: pthread_t
    private let joined = Atomic<Bool>(false)

    private init(handle: pthread_t) { self.handle = handle }

    /// A joinable thread; call ``join()`` to wait for `body` to return. Dropping it
    /// unjoined detaches the thread.
    ///
    /// - Throws: `pthread_create`'s error (`EAGAIN` when the process is out of threads).
    public static func spawn(
        name: String, stackSize: Int? = nil, _ body: @escaping @Sendable () -> Void
    ) throws(Errno) -> PosixThread {
        PosixThread(handle: try create(name: name, stackSize: stackSize, detached: false, body))
    }

    /// A detached thread: it cleans up after itself when `body` returns.
    ///
    /// - Throws: `pthread_create`'s error; `body` never runs then.
    public static func detach(
        name: String, stackSize: Int? = nil, _ body: @escaping @Sendable () -> Void
    ) throws(Errno) {
        _ = try create(name: name, stackSize: stackSize, detached: true, body)
    }

    /// Waits for the closure to return (once; later calls return at once).
    public func join() {
        guard !joined.exchange(true, ordering: .acquiringAndReleasing) else { return }
        pthread_join(handle, nil)
    }

    deinit {
        if !joined.load(ordering: .acquiring) { pthread_detach(handle) }
    }

    /// Names the calling thread (at most 15 bytes show).
    public static func setCurrentName(_ name: String) {
        _ = cplatform_set_current_thread_name(name)
    }

    private final class Start: Sendable {
        let name: String
        let body: @Sendable () -> Void
        init(_ name: String, _ body: @escaping @Sendable () -> Void) {
            self.name = name
            self.body = body
        }
    }

    private static func create(
        name: String, stackSize: Int?, detached: Bool, _ body: @escaping @Sendable () -> Void
    ) throws(Errno) -> pthread_t {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        if detached { pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED)) }
        if let stackSize {
            let status = pthread_attr_setstacksize(&attributes, stackSize)
            guard status == 0 else { throw Errno(rawValue: status) }
        }
        let start = Unmanaged.passRetained(Start(name, body)).toOpaque()
        var handle = pthread_t()
        let status = pthread_create(
            &handle, &attributes,
            { context in
                // pthread_create's argument is the retained Start passed below; never nil.
                let start = Unmanaged<Start>.fromOpaque(context.unsafelyUnwrapped).takeRetainedValue()
                PosixThread.setCurrentName(start.name)
                start.body()
                return nil
            }, start)
        guard status == 0 else {
            Unmanaged<Start>.fromOpaque(start).release()
            throw Errno(rawValue: status)
        }
        return handle
    }
}
