import CGnuTLS

/// A TLS failure, worded for the operator: which file or step, and what GnuTLS said.
public struct TLSError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }

    /// `what: GnuTLS's message for code`.
    init(_ what: String, code: Int32) {
        description = "\(what): \(String(cString: gnutls_strerror(code)))"
    }
}
