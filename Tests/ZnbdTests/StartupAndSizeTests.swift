import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Issue 10, D1 and D2, driven through the built `znbd`: sizes the process cannot hold are
/// errors for the request (the server and its data live on), and a start-up failure prints
/// what failed and exits non-zero instead of hanging.
@Suite struct StartupAndSizeTests {
    /// D1: `set zramN disksize 64P` used to abort the whole server.
    @Test(.timeLimit(.minutes(2)))
    func anUnaddressableDisksizeIsAnErrorAndTheServerLivesOn() throws {
        let server = try ZnbdServer(["--size", "16M"])
        defer { server.stop() }
        try ExternalCommand.require("qemu-io", ["-f", "raw", "-c", "write -P 0x3c 0 1M", server.uri()])
        let added = try server.cli(["hot-add"])
        #expect(added.succeeded, "\(added)")
        let device = added.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        for size in ["64P", "8E", "0xffffffffffffffff"] {
            let refused = try server.cli(["set", device, "disksize", size])
            #expect(refused.status != 0 && refused.stderr.contains("ENOMEM"), "disksize \(size): \(refused)")
            #expect(server.isRunning, "disksize \(size) must not take the server down:\n\(server.logText)")
        }
        // The device refused nothing else: it still takes a size it can hold.
        let accepted = try server.cli(["set", device, "disksize", "1P"])
        #expect(accepted.succeeded, "\(accepted)")
        try ExternalCommand.require("qemu-io", ["-f", "raw", "-c", "read -P 0x3c 0 1M", server.uri()])
    }

    /// D1, from a config file: a section sized past what the process can address stops the
    /// start with the reason, instead of an abort after other devices were made.
    @Test(.timeLimit(.minutes(2)))
    func aConfigSizedPastTheAddressSpaceFailsToStartWithTheReason() throws {
        let directory = try ZnbdServer.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let config = directory + "/znbd.conf"
        try Data("[zram0]\nzram-size = 16\n\n[zram1]\nzram-size = 68719476736\n".utf8)
            .write(to: URL(fileURLWithPath: config))
        let result = try ExternalCommand.run(
            ZnbdServer.binary,
            ["serve", "--unix", directory + "/nbd.sock", "--control", directory + "/control.sock",
             "--config", config, "--no-mlock", "--no-fuse"],
            timeout: 30)
        #expect(!result.timedOut && result.status != 0, "\(result)")
        #expect(result.stderr.contains("zram1") || result.stderr.contains("ENOMEM"), "the reason is printed: \(result)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/nbd.sock"), "nothing is left listening")
    }

    /// D2: `--tcp PORT` with the port taken used to hang silently, ignoring SIGTERM.
    @Test(.timeLimit(.minutes(2)))
    func aTakenTCPPortFailsAtOnceWithTheAddress() throws {
        let holder = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(holder >= 0)
        defer { close(holder) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(holder, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(bound == 0 && listen(holder, 1) == 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(holder, $0, &length) }
        }
        let port = Int(UInt16(bigEndian: address.sin_port))

        let directory = try ZnbdServer.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // The 30 s limit is a watchdog that turns a hang into a failure, not a speed threshold.
        let result = try ExternalCommand.run(
            ZnbdServer.binary,
            ["serve", "--unix", directory + "/nbd.sock", "--control", directory + "/control.sock",
             "--tcp", "127.0.0.1:\(port)", "--size", "16M", "--no-mlock", "--no-fuse"],
            timeout: 30)
        #expect(!result.timedOut, "znbd serve hung on a taken port: \(result)")
        #expect(result.status != 0, "\(result)")
        #expect(result.stderr.contains("127.0.0.1:\(port)") && result.stderr.contains("in use"), "\(result)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/nbd.sock"), "the Unix socket is removed again")
    }
}
