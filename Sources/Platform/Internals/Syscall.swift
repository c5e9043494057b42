import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Runs a system call that returns -1 and sets `errno` on failure, in swift-system's
/// style: the failure is thrown as an `Errno`, and `EINTR` is retried when asked.
///
/// - Parameters:
///   - retryOnInterrupt: call again while the call fails with `EINTR`.
///   - call: the system call.
/// - Returns: what the call returned (not -1).
@discardableResult
public func valueOrErrno<Result: FixedWidthInteger>(
    retryOnInterrupt: Bool = true, _ call: () -> Result
) throws(Errno) -> Result {
    while true {
        let result = call()
        if result != -1 { return result }
        let error = Errno(rawValue: errno)
        if retryOnInterrupt && error == .interrupted { continue }
        throw error
    }
}

extension Errno {
    /// The calling thread's `errno`, for calls that report failure some other way than -1.
    public static var lastError: Errno { Errno(rawValue: errno) }
}
