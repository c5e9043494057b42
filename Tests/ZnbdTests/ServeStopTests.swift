import Foundation
import Testing

@testable import ZnbdKit

/// Issue 10 C5: SIGTERM while a client is in transmission must not throw its data
/// away. The built `znbd serve` keeps serving, logs who holds which device, and
/// exits 0 when the client detaches; a second signal or `--force-stop` stops at once.
@Suite struct ServeStopTests {
    /// Bounds every wait; reaching it fails the test (it is not a timing assertion).
    static let watchdog: Double = 60

    /// A client in transmission on zram0, counted by the server.
    static func attachedClient(_ server: ZnbdServer) throws -> NBDTestClient {
        let client = try NBDTestClient(socket: server.socket, export: "zram0")
        #expect(try client.write([UInt8](repeating: 0x5A, count: 4096), at: 0) == 0)
        return client
    }

    /// Waits until the server's log contains `text`; false when the watchdog fires first.
    static func logShows(_ server: ZnbdServer, _ text: String) -> Bool {
        Poll.until(seconds: watchdog) { server.logText.contains(text) || !server.isRunning } && server.logText.contains(text)
    }

    @Test(.timeLimit(.minutes(3)))
    func sigtermWithAClientAttachedServesUntilItDetaches() throws {
        let server = try ZnbdServer(["--size", "16M"])
        defer { server.stop() }
        let client = try Self.attachedClient(server)
        server.signal(SIGTERM)
        #expect(Self.logShows(server, "still serving zram0 (1 connection)"), "log:\n\(server.logText)")
        #expect(server.isRunning)
        // Still serving after the signal: a write and a read of it.
        let page = [UInt8](repeating: 0xC5, count: 4096)
        #expect(try client.write(page, at: 8192) == 0)
        #expect(try client.read(at: 8192, length: 4096) == page)
        #expect(try client.read(at: 0, length: 4096) == [UInt8](repeating: 0x5A, count: 4096))
        #expect(server.isRunning)
        client.disconnect()
        let status = server.waitForExit(seconds: Self.watchdog)
        #expect(status == 0, "the server should exit 0 once the client detached; log:\n\(server.logText)")
        #expect(server.logText.contains("the last client detached"), "log:\n\(server.logText)")
    }

    @Test(.timeLimit(.minutes(3)))
    func aSecondSignalStopsAtOnce() throws {
        let server = try ZnbdServer(["--size", "16M"])
        defer { server.stop() }
        let client = try Self.attachedClient(server)
        server.signal(SIGTERM)
        #expect(Self.logShows(server, "still serving zram0 (1 connection)"), "log:\n\(server.logText)")
        server.signal(SIGTERM)
        let status = server.waitForExit(seconds: Self.watchdog)
        #expect(status == 0, "log:\n\(server.logText)")
        #expect(server.logText.contains("stopping at once"), "log:\n\(server.logText)")
        #expect(throws: NBDTestClient.Failure.self) { _ = try client.read(at: 0, length: 4096) }
    }

    @Test(.timeLimit(.minutes(3)))
    func forceStopEndsAtTheFirstSignal() throws {
        let server = try ZnbdServer(["--size", "16M", "--force-stop"])
        defer { server.stop() }
        let client = try Self.attachedClient(server)
        server.signal(SIGTERM)
        let status = server.waitForExit(seconds: Self.watchdog)
        #expect(status == 0, "log:\n\(server.logText)")
        #expect(!server.logText.contains("still serving"), "log:\n\(server.logText)")
        #expect(throws: NBDTestClient.Failure.self) { _ = try client.read(at: 0, length: 4096) }
    }

    @Test(.timeLimit(.minutes(3)))
    func withNoClientTheFirstSignalStops() throws {
        let server = try ZnbdServer(["--size", "16M"])
        defer { server.stop() }
        let client = try Self.attachedClient(server)
        client.disconnect()
        // The server has let go of the device once the control socket counts no connection.
        let control = ControlClient(path: server.control)
        #expect(Poll.until(seconds: Self.watchdog) { (try? control.status())?.devices.first?.connections == 0 })
        server.signal(SIGINT)
        let status = server.waitForExit(seconds: Self.watchdog)
        #expect(status == 0, "log:\n\(server.logText)")
        #expect(!server.logText.contains("still serving"), "log:\n\(server.logText)")
    }
}
