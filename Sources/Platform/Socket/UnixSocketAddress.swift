#if canImport(Glibc)
import Glibc
#endif

/// A filesystem path for an AF_UNIX socket, checked to fit in `sun_path`.
public struct UnixSocketAddress: Sendable, CustomStringConvertible {
    public let path: String
    private let address: sockaddr_un

    /// - Throws: ``UnixSocketError`` (`.pathTooLong`) when `path` is empty or does not fit.
    public init(_ path: String) throws(UnixSocketError) {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw UnixSocketError(.pathTooLong, path: path)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        self.path = path
        self.address = address
    }

    public var description: String { "unix:\(path)" }

    /// Calls `body` with the address as a `sockaddr` and its length.
    func withSockaddr<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
        withUnsafePointer(to: address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }
}
