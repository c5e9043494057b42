#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Talks to a running `znbd serve` over its control socket.
public struct ControlClient {
    /// `/run/znbd/control.sock`, or in `$ZNBD_RUNTIME_DIR`.
    public static let defaultPath = RuntimePaths.fromEnvironment.controlSocket

    public let path: String

    public init(path: String) { self.path = path }

    /// Sends one request and returns the server's answer; a failed answer becomes a thrown `ControlFailure`.
    public func send(_ request: ControlRequest) throws -> ControlResponse {
        let fd: Int32
        do { fd = try UnixSocket.connect(path) } catch {
            throw ControlFailure(message: "\(error.description) (is `znbd serve` running?)")
        }
        defer { close(fd) }
        UnixSocket.setTimeout(fd, seconds: 60)
        try UnixSocket.writeAll(fd, Array(try JSONEncoder().encode(request)) + [UInt8(ascii: "\n")])
        guard let line = try UnixSocket.readLine(fd, limit: 16 << 20) else {
            throw ControlFailure(message: "the server closed the control connection")
        }
        let response = try JSONDecoder().decode(ControlResponse.self, from: Data(line))
        guard response.ok else {
            throw ControlFailure(message: "\(response.message ?? "failed") (\(response.errno ?? "error"))")
        }
        return response
    }
}

/// A control request the server refused; printed as `znbd: MESSAGE (ERRNO)`, exit status 1.
public struct ControlFailure: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }

    public init(message: String) { self.message = message }
}
