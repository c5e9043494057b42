#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Platform

@testable import ZnbdKit

/// A raw connection to a control socket, for sending bytes that `ControlClient`
/// would never send and reading the answers one line at a time.
final class ControlConnection {
    private let fd: Int32

    init(_ path: String) throws {
        fd = try UnixSocket.connect(to: path).rawValue
        ControlChannel.setTimeout(fd, seconds: 30)
    }

    deinit { close(fd) }

    /// Sends raw bytes.
    func send(_ bytes: [UInt8]) throws {
        try ControlChannel.writeAll(fd, bytes)
    }

    /// Sends one request as the client would encode it.
    func send(_ request: ControlRequest) throws {
        try send(Array(try JSONEncoder().encode(request)) + [UInt8(ascii: "\n")])
    }

    /// The next answer, decoded; nil when the server closed the connection. A server that
    /// hangs up on unread bytes (after a line over the limit) resets the connection: that
    /// is a close too, once the answers it sent before have been read.
    func receive() throws -> ControlResponse? {
        let line: [UInt8]?
        do { line = try ControlChannel.readLine(fd, limit: 16 << 20) } catch where error.errno == ECONNRESET { return nil }
        guard let line else { return nil }
        return try JSONDecoder().decode(ControlResponse.self, from: Data(line))
    }
}
