import CGnuTLS

/// Pre-shared keys: GnuTLS asks for a username's key during each handshake;
/// the answer comes from the table loaded at start (an unknown user fails the handshake).
extension TLSCredentials {
    static func makePSKCredentials() throws(TLSError) -> gnutls_psk_server_credentials_t {
        var credentials: gnutls_psk_server_credentials_t?
        let rc = gnutls_psk_allocate_server_credentials(&credentials)
        guard rc == GNUTLS_E_SUCCESS, let credentials else { throw TLSError("allocating PSK credentials", code: rc) }
        // The session's user pointer is its credentials (set by `TLSSession`, alive as long as the session).
        gnutls_psk_set_server_credentials_function(credentials) { session, username, key in
            guard let session, let username, let key, let context = gnutls_session_get_ptr(session) else { return -1 }
            let credentials = Unmanaged<TLSCredentials>.fromOpaque(context).takeUnretainedValue()
            guard let bytes = credentials.key(for: String(cString: username)) else { return -1 }
            return bytes.withUnsafeBytes { cgnutls_set_owned_datum(key, $0.baseAddress, UInt32($0.count)) }
        }
        let dh = gnutls_psk_set_server_known_dh_params(credentials, GNUTLS_SEC_PARAM_MEDIUM)
        guard dh >= 0 else {
            gnutls_psk_free_server_credentials(credentials)
            throw TLSError("PSK Diffie-Hellman parameters", code: dh)
        }
        return credentials
    }

    /// The key of `username`, or nil for an unknown user.
    func key(for username: String) -> [UInt8]? { pskKeys[username] }
}
