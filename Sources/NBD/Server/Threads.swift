#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Starts a detached POSIX thread running `body`.
///
/// - Returns: false when the thread could not be created (the caller cleans up).
@discardableResult
func spawnThread(name: String, stackSize: Int = 512 << 10, _ body: @escaping @Sendable () -> Void) -> Bool {
    final class Box: Sendable {
        let name: String
        let body: @Sendable () -> Void
        init(_ name: String, _ body: @escaping @Sendable () -> Void) {
            self.name = name
            self.body = body
        }
    }
    let box = Unmanaged.passRetained(Box(name, body)).toOpaque()
    var attr = pthread_attr_t()
    pthread_attr_init(&attr)
    defer { pthread_attr_destroy(&attr) }
    pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
    pthread_attr_setstacksize(&attr, stackSize)
    var thread = pthread_t()
    let rc = pthread_create(
        &thread, &attr,
        { arg in
            let box = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
            setCurrentThreadName(box.name)
            box.body()
            return nil
        }, box)
    if rc != 0 {
        Unmanaged<Box>.fromOpaque(box).release()
        return false
    }
    return true
}

/// Names the calling thread (prctl PR_SET_NAME; at most 15 bytes show).
func setCurrentThreadName(_ name: String) {
    guard let prctl = SwapSafety.prctlFunction else { return }
    var bytes = Array(name.utf8.prefix(15))
    bytes.append(0)
    bytes.withUnsafeBufferPointer { b in
        _ = prctl(15, UInt(bitPattern: b.baseAddress), 0, 0, 0)  // PR_SET_NAME
    }
}
