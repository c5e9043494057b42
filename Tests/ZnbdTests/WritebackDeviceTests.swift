import Foundation
import Testing

@testable import ZnbdKit

/// `writeback-device` through the built znbd: the config sets `backing_dev` (a file, a
/// loop block device, an nbdkit export) before disksize, writeback runs over the control
/// socket, and what NBD clients wrote reads back byte for byte from the backing store.
@Suite(.serialized) struct WritebackDeviceTests {
    static let loopMissing: String? = {
        if getuid() != 0 { return "needs root for losetup" }
        if !FileManager.default.fileExists(atPath: "/dev/loop-control") { return "no loop device support" }
        return nil
    }()
    static let nbdkitMissing: String? = ExternalCommand.which("nbdkit") == nil ? "nbdkit is not installed" : nil

    @Test func aFileBacksTheDevice() throws {
        let directory = try ZnbdServer.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/backing.img"
        try Self.writebackRoundTrip(backing: file, in: directory)
        var status = stat()
        #expect(stat(file, &status) == 0 && status.st_size == 16 << 20, "sized sparse to disksize")
    }

    @Test(Facility.required(loopMissing)) func aLoopDeviceBacksTheDevice() throws {
        try Facility.require(Self.loopMissing)
        let directory = try ZnbdServer.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/loop.img"
        try ExternalCommand.require("truncate", ["-s", "16M", file])
        let loop = try ExternalCommand.require("losetup", ["--find", "--show", file]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        defer { _ = try? ExternalCommand.run("losetup", ["-d", loop], timeout: 30) }
        try Self.writebackRoundTrip(backing: loop, in: directory)
    }

    @Test(Facility.required(nbdkitMissing)) func anNBDKitExportBacksTheDevice() throws {
        try Facility.require(Self.nbdkitMissing)
        let directory = try ZnbdServer.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let nbdkit = try NBDKit(directory: directory, plugin: ["memory", "16M"])
        defer { nbdkit.stop() }
        try Self.writebackRoundTrip(backing: nbdkit.uri, in: directory)
    }

    /// A backing server that dies fails the reads that need it with EIO; znbd keeps
    /// serving, and once the server is back (its data kept in a file) every byte reads back.
    @Test(Facility.required(nbdkitMissing)) func aBackingServerCrashIsEIOUntilItReturns() throws {
        try Facility.require(Self.nbdkitMissing)
        let directory = try ZnbdServer.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/remote.img"
        try ExternalCommand.require("truncate", ["-s", "16M", file])
        let nbdkit = try NBDKit(directory: directory, plugin: ["file", file])
        defer { nbdkit.stop() }
        let server = try Self.writtenBack(backing: nbdkit.uri, in: directory)
        defer { server.stop() }

        nbdkit.stop()
        let back = directory + "/back.bin"
        let failed = try ExternalCommand.run("nbdcopy", [server.uri(), back], timeout: 60)
        #expect(!failed.succeeded && !failed.timedOut, "a read of written-back pages without their server: \(failed)")
        #expect(server.isRunning)
        let failedReads = try server.cli(["get", "zram0", "io_stat"]).stdout.split(separator: " ").first
        #expect(failedReads.flatMap { UInt64($0) } ?? 0 > 0, "failed_reads counts the EIO")

        try nbdkit.start()
        try ExternalCommand.require("nbdcopy", [server.uri(), back])
        try ExternalCommand.require("cmp", ["-n", "\(4 << 20)", directory + "/source.bin", back])
    }

    /// The remote tier: another znbd over TCP with TLS (PSK) holds the written-back pages.
    @Test func anotherZnbdOverTLSBacksTheDevice() throws {
        let credentials = try TLSTests.Credentials()
        defer { credentials.remove() }
        let port = try TLSTests.freePort()
        let remote = try ZnbdServer([
            "--size", "16M", "--tcp", "\(port)", "--tls", "require", "--tls-psk", credentials.psk,
        ])
        defer { remote.stop() }
        let directory = try ZnbdServer.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Self.writebackRoundTrip(
            backing: "nbds://alice@127.0.0.1:\(port)/zram0?tls-psk-file=\(credentials.psk)", in: directory)
        let remoteData = try remote.cli(["status", "--bytes", "--raw", "--noheadings", "--output", "data"]).stdout
        #expect(UInt64(remoteData.trimmingCharacters(in: .whitespacesAndNewlines)) == 4 << 20,
                "the remote znbd holds the 1024 written-back pages: \(remoteData)")
        #expect(remote.isRunning)
    }

    /// 4 MiB written over NBD, all of it idle and written back, then read back over NBD.
    static func writebackRoundTrip(backing: String, in directory: String) throws {
        let server = try writtenBack(backing: backing, in: directory)
        defer { server.stop() }
        let back = directory + "/back.bin"
        try ExternalCommand.require("nbdcopy", [server.uri(), back])
        try ExternalCommand.require("cmp", ["-n", "\(4 << 20)", directory + "/source.bin", back])
        #expect(try bdStat(server)[1] == 1024, "each page read back once from the backing store")
        #expect(server.isRunning)
    }

    /// A znbd whose zram0 has `backing` as its backing_dev and 4 MiB (`source.bin`)
    /// written and then written back.
    static func writtenBack(backing: String, in directory: String) throws -> ZnbdServer {
        let config = directory + "/znbd.conf"
        try "[zram0]\nzram-size = 16\nwriteback-device = \(backing)\n".write(toFile: config, atomically: true, encoding: .utf8)
        let server = try ZnbdServer(["--config", config])
        #expect(try server.cli(["get", "zram0", "backing_dev"]).stdout == backing + "\n")

        let source = directory + "/source.bin"
        // Half noise, half text: huge pages and compressed ones both go to the backing store.
        try ExternalCommand.require("bash", ["-c", "head -c 2M /dev/urandom > \(source); yes znbd writeback | head -c 2M >> \(source)"])
        try ExternalCommand.require("nbdcopy", ["--flush", source, server.uri()])
        #expect(try server.cli(["set", "zram0", "idle", "all"]).succeeded)
        let writeback = try server.cli(["set", "zram0", "writeback", "idle"])
        #expect(writeback.succeeded, "\(writeback)")

        let written = try bdStat(server)
        #expect(written[0] == 1024 && written[2] == 1024, "every stored page written back: \(written)")
        #expect(written[1] == 0)
        return server
    }

    static func bdStat(_ server: ZnbdServer) throws -> [UInt64] {
        try server.cli(["get", "zram0", "bd_stat"]).stdout.split(separator: " ").compactMap {
            UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }
}

/// `nbdkit PLUGIN...` on a Unix socket in `directory`; it dies with the test process
/// (`--exit-with-parent`), and `stop()` kills it.
final class NBDKit: @unchecked Sendable {  // used from one test at a time
    let socket: String
    private let pidfile: String
    private let plugin: [String]
    private var process: Process?

    init(directory: String, plugin: [String]) throws {
        socket = directory + "/nbdkit.sock"
        pidfile = directory + "/nbdkit.pid"
        self.plugin = plugin
        try start()
    }

    deinit { stop() }

    var uri: String { "nbd+unix:///?socket=\(socket)" }

    /// Starts it (again); ready once the pidfile exists, which nbdkit writes after it listens.
    func start() throws {
        unlink(pidfile)
        unlink(socket)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try ExternalCommand.which("nbdkit") ?? { throw ToolMissing(tool: "nbdkit") }())
        process.arguments = ["--foreground", "--exit-with-parent", "--unix", socket, "-P", pidfile] + plugin
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        guard Poll.until(seconds: 10, { FileManager.default.fileExists(atPath: pidfile) || !process.isRunning }),
            process.isRunning
        else {
            stop()
            throw NBDKitDidNotStart()
        }
    }

    /// SIGKILL, as a crash.
    func stop() {
        guard let process else { return }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        self.process = nil
    }
}

struct NBDKitDidNotStart: Error {}
