import CGnuTLS

/// GnuTLS credentials and the priority cache, loaded once when the server starts
/// and shared by every TLS session.
///
/// `@unchecked Sendable`: the GnuTLS objects are only written during `init`;
/// afterwards sessions on any thread only read them, which GnuTLS allows for
/// credentials and priority caches. `pskKeys` is an immutable dictionary.
final class TLSCredentials: @unchecked Sendable {
    let mode: TLSConfiguration.Mode
    let verifyPeer: Bool
    /// x509 credentials, when a certificates directory was given.
    let certificate: gnutls_certificate_credentials_t?
    /// PSK credentials, when a PSK file was given.
    let psk: gnutls_psk_server_credentials_t?
    let pskKeys: [String: [UInt8]]
    let priority: gnutls_priority_t
    /// Things worth a warning in the log (a private key others can read).
    let warnings: [String]

    /// Loads every file the configuration names.
    /// - Throws: `TLSError` naming the file and what is wrong with it.
    init(_ configuration: TLSConfiguration) throws(TLSError) {
        if let problem = configuration.problem { throw TLSError(problem) }
        mode = configuration.mode
        verifyPeer = configuration.verifyPeer
        var warnings: [String] = []
        var certificate: gnutls_certificate_credentials_t?
        var psk: gnutls_psk_server_credentials_t?
        var keys: [String: [UInt8]] = [:]
        do throws(TLSError) {
            if let directory = configuration.certificatesDirectory {
                certificate = try Self.loadX509(directory: directory, verifyPeer: configuration.verifyPeer, warnings: &warnings)
            }
            if let file = configuration.pskFile {
                keys = try PSKKeyFile(parsing: CredentialFile.readText(file, "PSK file"), file: file).keys
                if CredentialFile.isReadableByOthers(file) { warnings.append("PSK file \(file) is readable by other users") }
                psk = try Self.makePSKCredentials()
            }
            priority = try Self.makePriority(psk: psk != nil)
        } catch {
            if let certificate { gnutls_certificate_free_credentials(certificate) }
            if let psk { gnutls_psk_free_server_credentials(psk) }
            throw error
        }
        self.certificate = certificate
        self.psk = psk
        pskKeys = keys
        self.warnings = warnings
    }

    deinit {
        gnutls_priority_deinit(priority)
        if let certificate { gnutls_certificate_free_credentials(certificate) }
        if let psk { gnutls_psk_free_server_credentials(psk) }
    }

    /// What the server offers, for the log: `x509`, `psk` or both.
    var kinds: String {
        [certificate != nil ? "x509" : nil, psk != nil ? "psk" : nil].compactMap { $0 }.joined(separator: "+")
    }

    /// GnuTLS's default suites, chosen in the server's order, with AES-GCM before
    /// ChaCha20 (NORMAL's order for certificates; a TLS 1.3 PSK binds SHA-256, which
    /// rules out AES-256-GCM-SHA384, and NORMAL would then pick ChaCha20, slower than
    /// AES-128-GCM where the CPU accelerates AES). With PSK also the key exchanges
    /// that keep forward secrecy (ECDHE-PSK, DHE-PSK; not plain PSK).
    private static func makePriority(psk: Bool) throws(TLSError) -> gnutls_priority_t {
        let base = "NORMAL:%SERVER_PRECEDENCE:-CHACHA20-POLY1305:+CHACHA20-POLY1305"
        let text = psk ? base + ":+ECDHE-PSK:+DHE-PSK" : base
        var priority: gnutls_priority_t?
        let rc = gnutls_priority_init(&priority, text, nil)
        guard rc == GNUTLS_E_SUCCESS, let priority else { throw TLSError("TLS priority \(text)", code: rc) }
        return priority
    }
}
