import Platform

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Thin wrappers over POSIX socket calls: EINTR retried, partial transfers
/// finished, SIGPIPE suppressed with MSG_NOSIGNAL.
enum SocketIO {
    /// Receives up to `count` bytes; returns the count, 0 at end of stream, -1 on error.
    static func receive(_ fd: Int32, _ p: UnsafeMutableRawPointer, _ count: Int) -> Int {
        while true {
            let n = recv(fd, p, count, 0)
            if n >= 0 { return n }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK {
                if !Poll.wait(fd, for: Int16(POLLIN), timeoutMilliseconds: -1) { return -1 }
                continue
            }
            return -1
        }
    }

    /// Sends all `count` bytes; false on error, or once `deadline` passes with bytes unsent.
    /// With a deadline the sends never block: a peer that stops reading cannot hold the caller past it.
    static func sendAll(_ fd: Int32, _ p: UnsafeRawPointer, _ count: Int, deadline: Deadline = .never) -> Bool {
        let flags = Int32(MSG_NOSIGNAL) | (deadline.isNever ? 0 : Int32(MSG_DONTWAIT))
        var done = 0
        while done < count {
            let n = send(fd, p + done, count - done, flags)
            if n > 0 {
                done += n
            } else if n < 0 && errno == EINTR {
                continue
            } else if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                if !deadline.wait(fd, for: Int16(POLLOUT)) { return false }
            } else {
                return false
            }
        }
        return true
    }

    static func setNoDelay(_ fd: Int32) {
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// SO_SNDBUF (the kernel doubles it); beyond net.core.wmem_max only with
    /// CAP_NET_ADMIN (SO_SNDBUFFORCE), else wmem_max. Best effort: a refusal keeps the default.
    static func setSendBuffer(_ fd: Int32, bytes: Int) {
        var value = Int32(clamping: bytes / 2)
        let size = socklen_t(MemoryLayout<Int32>.size)
        if setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &value, size) != 0 {
            _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &value, size)
        }
    }

}

/// `shutdown(2)`, named apart from the server's own `shutdown()`.
func shutdownSocket(_ fd: Int32, _ how: Int32) {
    _ = shutdown(fd, how)
}
