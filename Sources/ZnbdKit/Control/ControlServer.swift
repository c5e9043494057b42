#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Platform
import Logging
import SwiftZram
import Synchronization

/// Serves the control socket: `status`, `get`, `set`, `hot-add`, `hot-remove`,
/// one JSON request per line, one JSON response per line.
///
/// Requests are bounded (64 KiB); a malformed one gets an EINVAL answer, a longer
/// line an EMSGSIZE answer before the connection closes, and a client silent for
/// 30 s is dropped, as is one whose request line takes longer than 30 s to arrive
/// (a byte at a time) or that leaves its answers unread for 30 s (answers are
/// never buffered beyond the socket: a client must read them to go on sending).
/// Each client has its own thread, at most `clientLimit` at once: one more is
/// answered EBUSY and closed. The requests themselves are answered in
/// `ControlServer+Requests.swift`.
public final class ControlServer: Sendable {
    static let requestLimit = 64 << 10
    /// Time for a whole request line to arrive, counted from the end of the previous answer.
    static let requestTimeout: Duration = .seconds(30)
    /// Control clients served at once (each holds a thread until it hangs up or idles 30 s).
    static let clientLimit = 32

    public let path: String
    let registry: DeviceRegistry
    let logger: Logger
    private let listener: Int32
    private let stopped = Atomic<Bool>(false)
    private let clients = Atomic<Int>(0)

    public init(path: String, registry: DeviceRegistry, logger: Logger) throws {
        self.path = path
        self.registry = registry
        self.logger = logger
        // Refuses a live server or a file that is not a socket; replaces only a dead socket.
        listener = try UnixSocket.listen(at: path, backlog: 64).rawValue
    }

    /// Starts the accept thread.
    /// - Throws: the thread's creation failure (`Errno`).
    public func start() throws {
        try PosixThread.detach(name: "znbd-control") { [self] in acceptLoop() }
    }

    /// Stops accepting and removes the socket file.
    public func shutdown() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        Glibc.shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        unlink(path)
    }

    private func acceptLoop() {
        while !stopped.load(ordering: .acquiring) {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                if stopped.load(ordering: .acquiring) { return }
                logger.warning("control accept failed: \(String(cString: strerror(errno)))")
                usleep(100_000)
                continue
            }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            guard clients.add(1, ordering: .relaxed).newValue <= Self.clientLimit else {
                clients.subtract(1, ordering: .relaxed)
                ControlChannel.setTimeout(client, seconds: 1)
                try? ControlChannel.writeAll(client, Self.encode(.failure(.busy("more than \(Self.clientLimit) control clients at once"))))
                close(client)
                continue
            }
            do {
                try PosixThread.detach(name: "znbd-control-client") { [self] in
                    serve(client)
                    clients.subtract(1, ordering: .relaxed)
                }
            } catch {
                clients.subtract(1, ordering: .relaxed)
                logger.warning("cannot start a control client thread: \(error)")
                close(client)
            }
        }
    }

    private func serve(_ fd: Int32) {
        defer { close(fd) }
        ControlChannel.setTimeout(fd, seconds: 30)
        while true {
            let line: [UInt8]
            do {
                let deadline = Deadline(after: Self.requestTimeout)
                guard let read = try ControlChannel.readLine(fd, limit: Self.requestLimit, deadline: deadline) else { return }
                line = read
            } catch {
                // Too long, or the peer went away mid-line: answer if it still listens, then hang up.
                try? ControlChannel.writeAll(fd, Self.encode(.failure(ControlError(.init(errno: error.errno), error.description))))
                return
            }
            let response: ControlResponse
            do {
                response = handle(try JSONDecoder().decode(ControlRequest.self, from: Data(line)))
            } catch {
                response = .failure(.invalid("malformed control request"))
            }
            do { try ControlChannel.writeAll(fd, Self.encode(response)) } catch { return }
        }
    }

    /// One response as a JSON line.
    static func encode(_ response: ControlResponse) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let fallback = Data(#"{"errno":"EIO","message":"cannot encode the response","ok":false}"#.utf8)
        return Array((try? encoder.encode(response)) ?? fallback) + [UInt8(ascii: "\n")]
    }
}
