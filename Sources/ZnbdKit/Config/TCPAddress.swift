import NBD

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `[HOST:]PORT` for `znbd serve --tcp`, and who can reach it.
public struct TCPAddress: Sendable, Equatable {
    public var host: String
    public var port: UInt16

    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// `PORT` (on 127.0.0.1), `HOST:PORT` or `[IPV6]:PORT`.
    public static func parse(_ text: String) throws(TCPAddressError) -> TCPAddress {
        var host = "127.0.0.1"
        var portText = Substring(text)
        if let colon = text.lastIndex(of: ":") {
            host = String(text[..<colon])
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            portText = text[text.index(after: colon)...]
        }
        guard let port = UInt16(portText), port > 0 else { throw TCPAddressError("--tcp '\(text)' needs a port 1-65535") }
        return TCPAddress(host: host, port: port)
    }

    /// Only this machine can connect: 127.0.0.0/8, ::1 (also IPv4-mapped) or `localhost`.
    /// Any other name counts as reachable from outside.
    public var isLoopback: Bool {
        if host == "localhost" { return true }
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return UInt32(bigEndian: v4.s_addr) >> 24 == 127 }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, host, &v6) == 1 else { return false }
        let bytes = withUnsafeBytes(of: v6) { Array($0) }
        if bytes[0..<15].allSatisfy({ $0 == 0 }) && bytes[15] == 1 { return true }
        let mapped = bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xff && bytes[11] == 0xff
        return mapped && bytes[12] == 127
    }

    /// Why serving this address must be refused, or nil: plaintext TCP beyond
    /// loopback (TLS off, or `on`, which still serves plaintext clients) lets
    /// anyone who reaches it read and overwrite the devices.
    public func refusal(tls: TLSConfiguration.Mode, insecure: Bool) -> String? {
        guard tls != .require, !insecure, !isLoopback else { return nil }
        let how = tls == .off ? "without TLS" : "with --tls on (plaintext clients are still served)"
        return """
            refusing TCP on \(host) \(how): anyone who reaches it can read and overwrite the devices. \
            Use --tls require with --tls-psk or --tls-certificates, or --insecure to serve it anyway
            """
    }

    /// The start-up warning while plaintext clients are served over TCP, or nil under `require`.
    public func plaintextWarning(tls: TLSConfiguration.Mode) -> String? {
        guard tls != .require else { return nil }
        let who = isLoopback ? "every local user" : "anyone who can reach it (--insecure)"
        let how = tls == .off ? "without TLS" : "with --tls on, plaintext clients too"
        return "TCP on \(host):\(port) \(how): \(who) can read and overwrite the devices (see --tls require)"
    }
}

/// A `--tcp` value that is not `[HOST:]PORT`.
public struct TCPAddressError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}
