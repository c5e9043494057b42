import CGnuTLS
import Platform

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One connection's TLS session over its socket, after NBD_OPT_STARTTLS.
///
/// The socket is switched to non-blocking mode: GnuTLS then keeps partial
/// records in its buffers and reports GNUTLS_E_AGAIN, and every wait is our
/// own `poll` with our own deadline, so a client that stalls mid-record cannot
/// hold the thread past the handshake timeout.
///
/// Owned and used by the connection's thread only. Every failure is a return
/// value (the connection then closes); nothing here traps on peer input.
final class TLSSession {
    let socket: Int32
    let session: gnutls_session_t
    /// Keeps the credentials (and the PSK callback's context) alive as long as the session.
    private let credentials: TLSCredentials

    /// Sets up a server session on `socket`; the handshake is `handshake(before:)`.
    init(socket: Int32, credentials: TLSCredentials) throws(TLSError) {
        var session: gnutls_session_t?
        let rc = gnutls_init(&session, UInt32(GNUTLS_SERVER) | UInt32(GNUTLS_NONBLOCK))
        guard rc == GNUTLS_E_SUCCESS, let session else { throw TLSError("creating a TLS session", code: rc) }
        self.socket = socket
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
        cgnutls_transport_set_fd(session, socket)
        let flags = fcntl(socket, F_GETFL)
        guard flags >= 0, fcntl(socket, F_SETFL, flags | O_NONBLOCK) == 0 else {
            throw TLSError("making the socket non-blocking: \(String(cString: strerror(errno)))")
        }
    }

    deinit { gnutls_deinit(session) }

    private func check(_ rc: Int32, _ what: String) throws(TLSError) {
        guard rc >= 0 else { throw TLSError(what, code: rc) }
    }

    // MARK: - Handshake

    /// Runs the TLS handshake, giving up at `deadline`; then checks the client's
    /// certificate when the server verifies peers.
    func handshake(before deadline: Deadline) throws(TLSError) {
        while true {
            let rc = gnutls_handshake(session)
            if rc == GNUTLS_E_SUCCESS { break }
            guard gnutls_error_is_fatal(rc) == 0 else { throw TLSError("TLS handshake", code: rc) }
            let events = gnutls_record_get_direction(session) == 1 ? POLLOUT : POLLIN
            guard deadline.wait(socket, for: Int16(events)) else {
                throw TLSError("TLS handshake timed out")
            }
        }
        if credentials.verifyPeer { try verifyClientCertificate() }
    }

    private func verifyClientCertificate() throws(TLSError) {
        // A PSK session authenticated the client with its key.
        guard gnutls_auth_get_type(session) == GNUTLS_CRD_CERTIFICATE else { return }
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

    /// How the peer authenticated, for the log: `psk:NAME`, `x509` or `anonymous`.
    var peerDescription: String {
        switch gnutls_auth_get_type(session) {
        case GNUTLS_CRD_PSK:
            guard let name = gnutls_psk_server_get_username(session) else { return "psk" }
            return "psk:\(String(cString: name))"
        case GNUTLS_CRD_CERTIFICATE:
            return credentials.verifyPeer ? "x509 (client verified)" : "x509"
        default:
            return "anonymous"
        }
    }

    /// Protocol, key-exchange group and cipher, for the log: `TLS1.3 SECP256R1 AES-128-GCM`.
    var parameters: String {
        let name = { (text: UnsafePointer<CChar>?) in text.map { String(cString: $0) } ?? "none" }
        return [
            name(gnutls_protocol_get_name(gnutls_protocol_get_version(session))),
            name(gnutls_group_get_name(gnutls_group_get(session))),
            name(gnutls_cipher_get_name(gnutls_cipher_get(session))),
        ].joined(separator: " ")
    }

    // MARK: - Waiting

    /// Polls the socket for `events`; false on timeout or error. -1 waits forever.
    func wait(_ events: Int16, timeoutMilliseconds: Int32) -> Bool {
        Poll.wait(socket, for: events, timeoutMilliseconds: timeoutMilliseconds)
    }
}
