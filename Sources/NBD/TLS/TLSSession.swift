import CGnuTLS

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One connection's TLS session over its socket, after NBD_OPT_STARTTLS.
///
/// Owned and used by the connection's thread only. Every failure is a return
/// value (the connection then closes); nothing here traps on peer input.
final class TLSSession {
    let fd: Int32
    private let session: gnutls_session_t
    /// Keeps the credentials (and the PSK callback's context) alive as long as the session.
    private let credentials: TLSCredentials

    /// Sets up a server session on `fd`; the handshake is `handshake(timeout:)`.
    init(fd: Int32, credentials: TLSCredentials) throws(TLSError) {
        var session: gnutls_session_t?
        let rc = gnutls_init(&session, UInt32(GNUTLS_SERVER))
        guard rc == GNUTLS_E_SUCCESS, let session else { throw TLSError("creating a TLS session", code: rc) }
        self.fd = fd
        self.session = session
        self.credentials = credentials
        // From here a throw runs deinit, which frees the session.
        try check(gnutls_priority_set(session, credentials.priority), "setting the TLS priority")
        if let certificate = credentials.certificate {
            try check(gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, UnsafeMutableRawPointer(certificate)), "x509 credentials")
            gnutls_certificate_server_set_request(session, credentials.verifyPeer ? GNUTLS_CERT_REQUIRE : GNUTLS_CERT_IGNORE)
        }
        if let psk = credentials.psk {
            try check(gnutls_credentials_set(session, GNUTLS_CRD_PSK, UnsafeMutableRawPointer(psk)), "PSK credentials")
        }
        gnutls_session_set_ptr(session, Unmanaged.passUnretained(credentials).toOpaque())
        cgnutls_transport_set_fd(session, fd)
    }

    deinit { gnutls_deinit(session) }

    private func check(_ rc: Int32, _ what: String) throws(TLSError) {
        guard rc >= 0 else { throw TLSError(what, code: rc) }
    }

    /// Runs the TLS handshake, giving up after `timeout`; then checks the client's
    /// certificate when the server verifies peers.
    func handshake(timeout: Duration) throws(TLSError) {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while true {
            let left = Self.milliseconds(clock.now.duration(to: deadline))
            guard left > 0 else { throw TLSError("TLS handshake timed out") }
            gnutls_handshake_set_timeout(session, UInt32(clamping: left))
            let rc = gnutls_handshake(session)
            if rc == GNUTLS_E_SUCCESS { break }
            if gnutls_error_is_fatal(rc) == 0 { continue }
            throw TLSError("TLS handshake", code: rc)
        }
        if credentials.verifyPeer && credentials.certificate != nil {
            try verifyClientCertificate()
        }
    }

    private func verifyClientCertificate() throws(TLSError) {
        guard gnutls_certificate_type_get(session) == GNUTLS_CRT_X509 else {
            // A PSK session authenticated the client with its key.
            return
        }
        var status: UInt32 = 0
        let rc = gnutls_certificate_verify_peers3(session, nil, &status)
        guard rc >= 0 else { throw TLSError("verifying the client certificate", code: rc) }
        guard status == 0 else {
            var text = gnutls_datum_t()
            defer { cgnutls_free(text.data) }
            if gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0) >= 0, let data = text.data {
                throw TLSError("client certificate rejected: \(String(cString: data))")
            }
            throw TLSError("client certificate rejected (status \(status))")
        }
    }

    /// Who the peer authenticated as: the PSK username, or nil.
    var pskUsername: String? {
        guard let name = gnutls_psk_server_get_username(session), name.pointee != 0 else { return nil }
        return String(cString: name)
    }

    // MARK: - Records

    /// Whether decrypted bytes are waiting inside GnuTLS (a poll on the socket would not see them).
    var hasBufferedData: Bool { gnutls_record_check_pending(session) > 0 }

    /// Receives up to `count` bytes, waiting at most `timeoutMilliseconds` (-1: forever).
    /// Returns the count, 0 at end of stream (or on timeout when `timedOut` is set), -1 on error.
    func receive(_ p: UnsafeMutableRawPointer, _ count: Int, timeoutMilliseconds: Int32 = -1) -> Int {
        gnutls_record_set_timeout(session, timeoutMilliseconds < 0 ? 0 : UInt32(max(timeoutMilliseconds, 1)))
        defer { if timeoutMilliseconds >= 0 { gnutls_record_set_timeout(session, 0) } }
        while true {
            let n = gnutls_record_recv(session, p, count)
            if n >= 0 { return n }
            let rc = Int32(n)
            if rc == GNUTLS_E_INTERRUPTED || rc == GNUTLS_E_AGAIN { continue }
            if rc == GNUTLS_E_PREMATURE_TERMINATION { return 0 }
            return -1
        }
    }

    /// Sends all `count` bytes; false on error.
    func sendAll(_ p: UnsafeRawPointer, _ count: Int) -> Bool {
        var done = 0
        while done < count {
            let n = gnutls_record_send(session, p + done, count - done)
            if n > 0 {
                done += n
            } else if n == Int(GNUTLS_E_INTERRUPTED) || n == Int(GNUTLS_E_AGAIN) {
                continue
            } else {
                return false
            }
        }
        return true
    }

    /// Sends every byte the iovecs describe as full records: corked, so a batch of
    /// small replies goes out in as few records and syscalls as possible.
    func sendVectors(_ iov: UnsafePointer<iovec>, _ count: Int) -> Bool {
        gnutls_record_cork(session)
        for i in 0..<count where iov[i].iov_len > 0 {
            guard let base = iov[i].iov_base, sendAll(base, iov[i].iov_len) else {
                _ = gnutls_record_discard_queued(session)
                _ = gnutls_record_uncork(session, 0)
                return false
            }
        }
        while true {
            let rc = gnutls_record_uncork(session, UInt32(GNUTLS_RECORD_WAIT))
            if rc >= 0 { return true }
            if rc == GNUTLS_E_INTERRUPTED || rc == GNUTLS_E_AGAIN { continue }
            return false
        }
    }

    /// Tells the client the session ends (close_notify), without waiting for its answer.
    func close() {
        _ = gnutls_bye(session, GNUTLS_SHUT_WR)
    }

    static func milliseconds(_ d: Duration) -> Int64 {
        d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
    }
}
