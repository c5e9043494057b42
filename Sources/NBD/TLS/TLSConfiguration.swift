/// TLS for the TCP listener, as nbdkit and qemu-nbd offer it: NBD_OPT_STARTTLS
/// with x509 certificates and/or pre-shared keys (GnuTLS).
///
/// The Unix socket is not covered: it is protected by its 0600 mode and the
/// kernel's nbd-client attaches swap through it.
public struct TLSConfiguration: Sendable, Equatable {
    /// Whether clients may or must upgrade with NBD_OPT_STARTTLS.
    public enum Mode: String, Sendable, CaseIterable {
        /// STARTTLS is answered with NBD_REP_ERR_POLICY.
        case off
        /// Clients may upgrade; plaintext clients are served too.
        case on
        /// Every option before STARTTLS except ABORT gets NBD_REP_ERR_TLS_REQD.
        case require
    }

    public var mode: Mode
    /// An x509 directory laid out as nbdkit and qemu expect: `ca-cert.pem`,
    /// `server-cert.pem`, `server-key.pem` (optionally `ca-crl.pem`).
    public var certificatesDirectory: String?
    /// Ask for a client certificate and refuse clients without one signed by `ca-cert.pem`.
    public var verifyPeer: Bool
    /// A pre-shared key file of `username:hexkey` lines, as GnuTLS's `psktool` writes them.
    public var pskFile: String?

    public init(mode: Mode = .off, certificatesDirectory: String? = nil, verifyPeer: Bool = false, pskFile: String? = nil) {
        self.mode = mode
        self.certificatesDirectory = certificatesDirectory
        self.verifyPeer = verifyPeer
        self.pskFile = pskFile
    }

    /// TLS off.
    public static let off = TLSConfiguration()

    /// What is inconsistent about this configuration, or nil when it can be used.
    public var problem: String? {
        switch mode {
        case .off:
            if certificatesDirectory != nil || pskFile != nil || verifyPeer {
                return "TLS credentials were given but TLS is off (use --tls on or --tls require)"
            }
        case .on, .require:
            if certificatesDirectory == nil && pskFile == nil {
                return "TLS \(mode.rawValue) needs credentials: an x509 certificates directory or a PSK file"
            }
            if verifyPeer && certificatesDirectory == nil {
                return "verifying the peer needs an x509 certificates directory (its ca-cert.pem)"
            }
        }
        return nil
    }
}
