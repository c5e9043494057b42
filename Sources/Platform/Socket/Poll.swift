#if canImport(Glibc)
import Glibc
#endif

/// `poll(2)` on one descriptor: the one wait of every socket loop.
public enum Poll {
    /// Waits until `fd` reports one of `events` (or an error or hang-up, which the
    /// next call on it will report); false on timeout or failure. -1 waits forever.
    /// A wait cut short by a signal starts again with the same timeout.
    public static func wait(_ fd: Int32, for events: Int16, timeoutMilliseconds: Int32) -> Bool {
        var descriptor = pollfd(fd: fd, events: events, revents: 0)
        while true {
            let ready = poll(&descriptor, 1, timeoutMilliseconds)
            if ready < 0 && errno == EINTR { continue }
            return ready > 0
        }
    }
}

extension Deadline {
    /// ``Poll/wait(_:for:timeoutMilliseconds:)`` with what is left of the deadline;
    /// false at once when it has passed.
    public func wait(_ fd: Int32, for events: Int16) -> Bool {
        let timeout = pollTimeout
        return timeout != 0 && Poll.wait(fd, for: events, timeoutMilliseconds: timeout)
    }
}
