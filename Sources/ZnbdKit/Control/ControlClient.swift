#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Platform
import SwiftZram
import SystemPackage

/// Talks to a running `znbd serve` over its control socket.
public struct ControlClient: Sendable {
    /// `/run/znbd/control.sock`, or in `$ZNBD_RUNTIME_DIR`.
    public static let defaultPath = RuntimePaths.fromEnvironment.controlSocket

    public let path: String

    public init(path: String) { self.path = path }

    /// Sends one request and returns the server's answer.
    /// - Throws: the server's refusal with its errno kind, or the connection's failure.
    public func send(_ request: ControlRequest) throws(ControlError) -> ControlResponse {
        let fd: Int32
        do { fd = try UnixSocket.connect(to: path).rawValue } catch {
            throw ControlError(ControlError.Kind(errno: error.errno.rawValue), "\(error.description) (is `znbd serve` running?)")
        }
        defer { close(fd) }
        try checkServer(fd)
        ControlChannel.setTimeout(fd, seconds: 60)
        let encoded: Data
        do { encoded = try JSONEncoder().encode(request) } catch {
            throw ControlError(.invalidArgument, "cannot encode the request: \(error)")
        }
        // A server that refuses the connection (EBUSY) answers and closes without reading:
        // the write may fail, and the answer is still there to read.
        var writeFailure: ControlChannel.Failure?
        do { try ControlChannel.writeAll(fd, Array(encoded) + [UInt8(ascii: "\n")]) } catch { writeFailure = error }
        let line: [UInt8]?
        do { line = try ControlChannel.readLine(fd, limit: 16 << 20) } catch {
            throw ControlError(.ioError, "control connection: \((writeFailure ?? error).description)")
        }
        guard let line else {
            throw ControlError(.ioError, writeFailure.map { "control connection: \($0.description)" } ?? "the server closed the control connection")
        }
        let response: ControlResponse
        do { response = try JSONDecoder().decode(ControlResponse.self, from: Data(line)) } catch {
            throw ControlError(.protocolError, "the server's answer is not a control response: \(error)")
        }
        if case .failure(let error) = response { throw error }
        return response
    }
}

extension ControlClient {
    /// Talks only to a server run by root or by us: another user who could place a
    /// socket at the path (a directory they can write to) would answer with their data.
    private func checkServer(_ fd: Int32) throws(ControlError) {
        let owner: uid_t
        do { owner = try UnixSocket.peerUserID(of: FileDescriptor(rawValue: fd)) } catch {
            throw ControlError(.ioError, "\(path): cannot tell who serves it: \(error)")
        }
        guard owner == 0 || owner == geteuid() else {
            throw ControlError(.permissionDenied, "\(path) is served by uid \(owner), not by root or uid \(geteuid()); refusing to talk to it")
        }
    }

    /// The server's devices and their counters.
    public func status() throws(ControlError) -> ServerStatus {
        guard case .status(let status) = try send(.status) else { throw unexpected("status") }
        return status
    }

    /// An attribute's text, as `cat /sys/block/DEVICE/ATTRIBUTE` prints it.
    public func get(_ device: String, _ attribute: String) throws(ControlError) -> String {
        guard case .value(let value) = try send(.get(device: device, attribute: attribute)) else { throw unexpected("get") }
        return value
    }

    /// Writes an attribute, as `echo VALUE > /sys/block/DEVICE/ATTRIBUTE` does.
    public func set(_ device: String, _ attribute: String, _ value: String) throws(ControlError) {
        _ = try send(.set(device: device, attribute: attribute, value: value))
    }

    /// Creates a device and returns its name.
    public func hotAdd(algorithm: CompressionAlgorithm? = nil, diskSize: UInt64? = nil) throws(ControlError) -> String {
        guard case .added(let device) = try send(.hotAdd(algorithm: algorithm, diskSize: diskSize)) else {
            throw unexpected("hot-add")
        }
        return device
    }

    /// Withdraws a device that no client has open.
    public func hotRemove(_ device: String) throws(ControlError) {
        _ = try send(.hotRemove(device: device))
    }

    private func unexpected(_ operation: String) -> ControlError {
        ControlError(.protocolError, "the server's answer to \(operation) has the wrong shape")
    }
}
