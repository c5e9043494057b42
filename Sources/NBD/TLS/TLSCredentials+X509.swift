import CGnuTLS

/// x509: the directory layout nbdkit and qemu use.
extension TLSCredentials {
    static let caCertificateFile = "ca-cert.pem"
    static let caRevocationFile = "ca-crl.pem"
    static let serverCertificateFile = "server-cert.pem"
    static let serverKeyFile = "server-key.pem"

    /// Loads the CA (trust for client certificates), the optional CRL, and the server's certificate and key.
    static func loadX509(
        directory: String, verifyPeer: Bool, warnings: inout [String]
    ) throws(TLSError) -> gnutls_certificate_credentials_t {
        try CredentialFile.checkDirectory(directory, "TLS certificates directory")
        let ca = directory + "/" + caCertificateFile
        let crl = directory + "/" + caRevocationFile
        let cert = directory + "/" + serverCertificateFile
        let key = directory + "/" + serverKeyFile
        try CredentialFile.checkReadable(cert, "server certificate")
        try CredentialFile.checkReadable(key, "server private key")
        if verifyPeer { try CredentialFile.checkReadable(ca, "CA certificate (needed to verify clients)") }

        var credentials: gnutls_certificate_credentials_t?
        let rc = gnutls_certificate_allocate_credentials(&credentials)
        guard rc == GNUTLS_E_SUCCESS, let credentials else { throw TLSError("allocating x509 credentials", code: rc) }
        do throws(TLSError) {
            if CredentialFile.isReadable(ca) {
                let count = gnutls_certificate_set_x509_trust_file(credentials, ca, GNUTLS_X509_FMT_PEM)
                guard count >= 0 else { throw TLSError("CA certificate \(ca)", code: count) }
                guard count > 0 else { throw TLSError("CA certificate \(ca): no PEM certificate in it") }
            }
            if CredentialFile.isReadable(crl) {
                let count = gnutls_certificate_set_x509_crl_file(credentials, crl, GNUTLS_X509_FMT_PEM)
                guard count >= 0 else { throw TLSError("CA revocation list \(crl)", code: count) }
            }
            let loaded = gnutls_certificate_set_x509_key_file(credentials, cert, key, GNUTLS_X509_FMT_PEM)
            if loaded == GNUTLS_E_CERTIFICATE_KEY_MISMATCH {
                throw TLSError("server private key \(key) does not belong to the certificate \(cert)")
            }
            guard loaded >= 0 else { throw TLSError("server certificate \(cert) with key \(key)", code: loaded) }
            let dh = gnutls_certificate_set_known_dh_params(credentials, GNUTLS_SEC_PARAM_MEDIUM)
            guard dh >= 0 else { throw TLSError("x509 Diffie-Hellman parameters", code: dh) }
        } catch {
            gnutls_certificate_free_credentials(credentials)
            throw error
        }
        if CredentialFile.isReadableByOthers(key) { warnings.append("server private key \(key) is readable by other users") }
        if !verifyPeer {
            warnings.append("x509 without verifying clients: anyone can connect over TLS (encrypted, not authenticated)")
        }
        return credentials
    }
}
