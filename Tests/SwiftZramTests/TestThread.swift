import Platform

/// A joinable thread for a test. A failure to create it ends the test process with the
/// errno: no test can go on without the thread it needs.
func startThread(_ body: @escaping @Sendable () -> Void) -> PosixThread {
    do {
        return try PosixThread.spawn(name: "zram-test", body)
    } catch {
        fatalError("cannot start a test thread: \(error)")
    }
}
