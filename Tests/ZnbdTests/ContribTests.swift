import Foundation
import Testing

@testable import ZnbdKit

/// The installable units in contrib/: systemd's verdict on the unit files, and the
/// SysV init script's start/status/stop on this machine.
@Suite(.serialized) struct ContribTests {
    static let contrib = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("contrib").path

    /// systemd-analyze comes with Debian's systemd package (scripts/install-deps.sh installs it).
    static var systemdAnalyzeMissing: String? {
        ExternalCommand.which("systemd-analyze") == nil ? "systemd-analyze is not installed (Debian package systemd)" : nil
    }

    @Test(Facility.required(systemdAnalyzeMissing))
    func systemdUnitsVerify() throws {
        try Facility.require(Self.systemdAnalyzeMissing)
        let directory = try ZnbdServer.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // verify checks that ExecStart's binary exists: point it at the one we built.
        for unit in ["znbd.service", "znbd-swap.service"] {
            let text = try String(contentsOfFile: Self.contrib + "/" + unit, encoding: .utf8)
            #expect(text.contains("/usr/local/bin/znbd"))
            try text.replacingOccurrences(of: "/usr/local/bin/znbd", with: ZnbdServer.binary)
                .write(toFile: directory + "/" + unit, atomically: true, encoding: .utf8)
        }
        let server = try String(contentsOfFile: Self.contrib + "/znbd.service", encoding: .utf8)
        // Stop order: swap (znbd-swap.service) and _netdev mounts (before remote-fs-pre.target) go first.
        for line in [
            "LimitMEMLOCK=infinity", "OOMScoreAdjust=-1000", "Type=notify", "ExecStart=/usr/local/bin/znbd serve",
            "Wants=remote-fs-pre.target", "Before=swap.target shutdown.target remote-fs-pre.target",
        ] {
            #expect(server.contains(line), "znbd.service lacks \(line)")
        }
        let swap = try String(contentsOfFile: Self.contrib + "/znbd-swap.service", encoding: .utf8)
        for line in [
            "Type=oneshot", "RemainAfterExit=yes", "znbd swapon", "ExecStop=/usr/local/bin/znbd swapoff",
            "Requires=znbd.service", "After=znbd.service",
        ] {
            #expect(swap.contains(line), "znbd-swap.service lacks \(line)")
        }
        let verdict = try ExternalCommand.run("bash", ["-c", "cd \(directory) && systemd-analyze verify --man=no ./znbd.service ./znbd-swap.service"], timeout: 120)
        #expect(verdict.succeeded, "\(verdict)")
        #expect(!verdict.stderr.contains("ignoring") && !verdict.stderr.contains("Unknown"), "\(verdict)")

        // The check does catch mistakes.
        try "[Service]\nType=sometimes\nExecStart=\(ZnbdServer.binary) serve\n".write(toFile: directory + "/bad.service", atomically: true, encoding: .utf8)
        let bad = try ExternalCommand.run("bash", ["-c", "cd \(directory) && systemd-analyze verify --man=no ./bad.service"], timeout: 120)
        #expect(bad.stderr.contains("Failed to parse service type"), "\(bad)")
    }

    @Test func initScriptParsesAndExplainsItself() throws {
        let script = Self.contrib + "/init.d/znbd"
        #expect(FileManager.default.isExecutableFile(atPath: script))
        try ExternalCommand.require("sh", ["-n", script])
        let usage = try ExternalCommand.run("env", ["ZNBD=\(ZnbdServer.binary)", "sh", script, "frobnicate"])
        #expect(usage.status == 2 && usage.stderr.contains("{start|stop|restart|status}"), "\(usage)")
    }

    @Test(.timeLimit(.minutes(5)), Facility.required(Facility.kernel))
    func initScriptStartsReportsAndStopsSwap() throws {
        try Facility.require(Facility.kernel)
        let sandbox = try OperationsSandbox()
        defer { sandbox.cleanUp() }
        let script = Self.contrib + "/init.d/znbd"
        func service(_ action: String) throws -> CommandResult {
            try ExternalCommand.run("env", [
                "ZNBD=\(ZnbdServer.binary)", "ZNBD_RUNTIME_DIR=\(sandbox.runtime)",
                "ZNBD_SWAP_ARGS=--size 64M --devices 1 --priority 100", "sh", script, action,
            ], timeout: 300)
        }
        let start = try service("start")
        #expect(start.succeeded, "\(start)")
        #expect(sandbox.swapAreas.map(\.priority) == [100])
        let status = try service("status")
        #expect(status.succeeded && status.stdout.contains("[SWAP]") && status.stdout.contains("Swap:"), "\(status)")
        let restart = try service("restart")
        #expect(restart.succeeded && sandbox.swapAreas.count == 1, "\(restart)")
        let stop = try service("stop")
        #expect(stop.succeeded, "\(stop)")
        sandbox.expectNothingLeft("after init.d stop")
        #expect(try service("status").status == 3)
    }
}
