import CGnuTLS
import Platform

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Record I/O on the non-blocking socket: GNUTLS_E_AGAIN means wait with `poll`,
/// then repeat the call with the same arguments, as GnuTLS requires.
extension TLSSession {
    /// What one `gnutls_record_recv` produced.
    func receiveOnce(into buffer: UnsafeMutableRawBufferPointer) -> TransportReceive {
        while true {
            let n = gnutls_record_recv(session, buffer.baseAddress, buffer.count)
            if n > 0 { return .bytes(n) }
            if n == 0 { return .endOfStream }
            switch Int32(n) {
            case GNUTLS_E_INTERRUPTED: continue
            case GNUTLS_E_AGAIN: return .wouldBlock
            case GNUTLS_E_PREMATURE_TERMINATION: return .endOfStream
            default: return .failed
            }
        }
    }

    /// Decrypted bytes are waiting inside GnuTLS (a poll on the socket would not see them).
    var hasBufferedData: Bool { gnutls_record_check_pending(session) > 0 }

    /// Sends all of `count` bytes as records (at most 16 KiB each), waiting while the
    /// socket is full, but not past `deadline`.
    func sendAll(_ p: UnsafeRawPointer, _ count: Int, deadline: Deadline) -> Bool {
        var done = 0
        while done < count {
            let n = gnutls_record_send(session, p + done, count - done)
            if n > 0 {
                done += n
                continue
            }
            switch Int32(truncatingIfNeeded: n) {
            case GNUTLS_E_INTERRUPTED: continue
            case GNUTLS_E_AGAIN: guard deadline.wait(socket, for: Int16(POLLOUT)) else { return false }
            default: return false
            }
        }
        return true
    }

    /// Tells the client the session ends (close_notify), without waiting for its answer.
    func bye() {
        _ = gnutls_bye(session, GNUTLS_SHUT_WR)
    }
}
