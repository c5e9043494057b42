import Foundation
import Testing

@testable import ZnbdKit

/// `znbd status/get/set/hot-add/hot-remove` against a live server.
@Suite(.serialized) struct ControlSurfaceTests {
    @Test func statusPrintsZramctlColumns() throws {
        let server = try ZnbdServer(["--size", "64M", "--devices", "2", "--algorithm", "lzo"])
        defer { server.stop() }
        try ExternalCommand.require("qemu-io", ["-f", "raw", "-c", "write -P 0x61 0 4M", server.uri("zram1")])
        let table = try server.cli(["status"])
        #expect(table.succeeded, "\(table)")
        let lines = table.stdout.split(separator: "\n")
        #expect(lines.first?.split(separator: " ").map(String.init)
            == ["NAME", "ALGORITHM", "DISKSIZE", "DATA", "COMPR", "TOTAL", "STREAMS", "MOUNTPOINT"])
        #expect(lines.count == 3)
        let zram1 = lines[2].split(separator: " ").map(String.init)
        #expect(zram1.prefix(4) == ["zram1", "lzo", "64M", "4M"])

        let bytes = try server.cli(["status", "--bytes", "--noheadings", "--raw", "--output", "name,data,same"])
        #expect(bytes.stdout == "zram0 0 0\nzram1 4194304 1024\n", "\(bytes)")

        let json = try server.cli(["status", "--json"])
        #expect(json.succeeded, "\(json)")
        let status = try JSONDecoder().decode(ServerStatus.self, from: Data(json.stdout.utf8))
        #expect(status.devices.map(\.name) == ["zram0", "zram1"])
        let zram1Status = try #require(status.devices.last)
        #expect(zram1Status.mm_stat.keys.sorted() == ["compr_data_size", "huge_pages", "huge_pages_since", "mem_limit",
                                                      "mem_used_max", "mem_used_total", "orig_data_size", "pages_compacted",
                                                      "same_pages"])
        #expect(zram1Status.mm_stat["orig_data_size"] == 4 << 20 && zram1Status.mm_stat["same_pages"] == 1024)
        #expect(zram1Status.io_stat.keys.sorted() == ["failed_reads", "failed_writes", "invalid_io", "notify_free"])
        #expect(zram1Status.comp_algorithm == "lzo" && zram1Status.initstate == 1 && zram1Status.disksize == 64 << 20)
        // The CLI prints what the server answers.
        #expect(status == (try ControlClient(path: server.control).status()))
    }

    @Test func attributesFollowZramsRules() throws {
        let server = try ZnbdServer(["--size", "16M"])
        defer { server.stop() }
        #expect(try server.cli(["get", "zram0", "comp_algorithm"]).stdout == "lzo [lz4] lz4hc zstd \n")
        #expect(try server.cli(["get", "zram0", "disksize"]).stdout == "16777216\n")

        let busy = try server.cli(["set", "zram0", "disksize", "1G"])
        #expect(busy.status != 0)
        #expect(busy.stderr.contains("EBUSY"), "\(busy)")
        let busyAlgorithm = try server.cli(["set", "zram0", "comp_algorithm", "zstd"])
        #expect(busyAlgorithm.status != 0 && busyAlgorithm.stderr.contains("EBUSY"))
        let invalid = try server.cli(["set", "zram0", "mem_limit", "lots"])
        #expect(invalid.status != 0 && invalid.stderr.contains("EINVAL"), "\(invalid)")
        let unknownDevice = try server.cli(["get", "zram9", "disksize"])
        #expect(unknownDevice.status != 0 && unknownDevice.stderr.contains("zram9"))
        let unknownAttribute = try server.cli(["get", "zram0", "colour"])
        #expect(unknownAttribute.status != 0 && unknownAttribute.stderr.contains("colour"))

        #expect(try server.cli(["set", "zram0", "mem_limit", "8M"]).succeeded)
        #expect(try server.cli(["get", "zram0", "mem_limit"]).stdout == "8388608\n")

        // Reset, reconfigure, and clients attach again.
        #expect(try server.cli(["set", "zram0", "reset", "1"]).succeeded)
        #expect(try server.cli(["get", "zram0", "initstate"]).stdout == "0\n")
        #expect(try server.cli(["set", "zram0", "comp_algorithm", "zstd"]).succeeded)
        #expect(try server.cli(["set", "zram0", "disksize", "32M"]).succeeded)
        let info = try ExternalCommand.require("nbdinfo", ["--size", server.uri()])
        #expect(info.stdout == "33554432\n")
    }

    @Test func resetIsBusyWhileAClientIsAttached() throws {
        let server = try ZnbdServer(["--size", "16M"])
        defer { server.stop() }
        // Returns once the server counts the connection; holds it until release().
        let holder = try ExportHolder(server)
        defer { holder.release() }
        let reset = try server.cli(["set", "zram0", "reset", "1"])
        #expect(reset.status != 0 && reset.stderr.contains("EBUSY"), "\(reset)")
        let remove = try server.cli(["hot-remove", "zram0"])
        #expect(remove.status != 0 && remove.stderr.contains("EBUSY"), "\(remove)")
        #expect(try server.cli(["get", "zram0", "initstate"]).stdout == "1\n")
    }

    /// backing_dev, writeback and bd_stat through `znbd set/get` and `status --json`.
    @Test func writebackThroughTheControlSurface() throws {
        let server = try ZnbdServer(["--size", "16M"])
        defer { server.stop() }
        let backing = server.directory + "/backing.img"
        #expect(try server.cli(["get", "zram0", "backing_dev"]).stdout == "none\n")
        let busy = try server.cli(["set", "zram0", "backing_dev", backing])
        #expect(busy.status != 0 && busy.stderr.contains("EBUSY"), "set before disksize only: \(busy)")
        let noDevice = try server.cli(["set", "zram0", "writeback", "idle"])
        #expect(noDevice.status != 0 && noDevice.stderr.contains("ENODEV"), "\(noDevice)")
        #expect(try server.cli(["set", "zram0", "reset", "1"]).succeeded)
        #expect(try server.cli(["set", "zram0", "backing_dev", backing]).succeeded)
        #expect(try server.cli(["set", "zram0", "disksize", "16M"]).succeeded)
        let data = server.directory + "/noise.bin"
        try ExternalCommand.require("bash", ["-c", "head -c 1M /dev/urandom > \(data)"])
        try ExternalCommand.require("nbdcopy", [data, server.uri()])
        #expect(try server.cli(["set", "zram0", "writeback", "huge"]).succeeded)
        #expect(try server.cli(["get", "zram0", "bd_stat"]).stdout == "     256        0      256\n")
        let json = try server.cli(["status", "--json"])
        let status = try JSONDecoder().decode(ServerStatus.self, from: Data(json.stdout.utf8))
        let zram0 = try #require(status.devices.first)
        #expect(zram0.backing_dev == backing)
        #expect(zram0.bd_stat == ["bd_count": 256, "bd_reads": 0, "bd_writes": 256])
        #expect(zram0.mm_stat["huge_pages"] == 0 && zram0.mm_stat["orig_data_size"] == 1 << 20)
        try ExternalCommand.require("nbdcopy", [server.uri(), server.directory + "/back.bin"])
        try ExternalCommand.require("cmp", ["-n", "1048576", data, server.directory + "/back.bin"])
    }

    /// The tiering knobs through `znbd set/get`, and `status --json`'s `tiering`.
    @Test func tieringKnobsThroughTheControlSurface() throws {
        let server = try ZnbdServer(["--size", "16M"])
        defer { server.stop() }
        #expect(try server.cli(["get", "zram0", "tiering_enable"]).stdout == "0\n")
        #expect(try server.cli(["set", "zram0", "tiering_high_watermark", "8M"]).succeeded)
        #expect(try server.cli(["set", "zram0", "tiering_interval", "3600"]).succeeded)
        #expect(try server.cli(["set", "zram0", "tiering_enable", "1"]).succeeded)
        let bad = try server.cli(["set", "zram0", "tiering_psi_threshold", "101"])
        #expect(bad.status != 0 && bad.stderr.contains("EINVAL"), "\(bad)")
        #expect(try server.cli(["get", "zram0", "tiering_stat"]).stdout.split(separator: " ").count == 5)
        let json = try server.cli(["status", "--json"])
        let status = try JSONDecoder().decode(ServerStatus.self, from: Data(json.stdout.utf8))
        let tiering = try #require(status.devices.first?.tiering)
        #expect(tiering["tiering_enable"] == 1 && tiering["tiering_high_watermark"] == 8 << 20)
        #expect(tiering["tiering_psi_threshold"] == 0 && tiering["saved_writes"] == 0)
    }

    @Test func hotAddAndRemoveExports() throws {
        let server = try ZnbdServer(["--size", "16M"])
        defer { server.stop() }
        let added = try server.cli(["hot-add", "--size", "8M", "--algorithm", "zstd"])
        #expect(added.stdout == "zram1\n", "\(added)")
        #expect(try ExternalCommand.require("nbdinfo", ["--size", server.uri("zram1")]).stdout == "8388608\n")
        #expect(try server.cli(["hot-remove", "zram1"]).succeeded)
        let gone = try ExternalCommand.run("nbdinfo", ["--size", server.uri("zram1")])
        #expect(gone.status != 0)
    }

    @Test func memLimitAnswersENOSPCOverNBD() throws {
        let server = try ZnbdServer(["--size", "64M", "--mem-limit", "1M"])
        defer { server.stop() }
        // Incompressible data: 1 MiB of limit holds at most 256 pages.
        let data = server.directory + "/noise.bin"
        try ExternalCommand.require("bash", ["-c", "head -c 4M /dev/urandom > \(data)"])
        let copy = try ExternalCommand.run("nbdcopy", [data, server.uri()], timeout: 120)
        #expect(copy.status != 0)
        #expect(copy.stderr.contains("No space left on device"), "\(copy)")
        let io = try server.cli(["get", "zram0", "io_stat"]).stdout.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        #expect(io.count == 4 && io[1] > 0)
        let mm = try server.cli(["get", "zram0", "mm_stat"]).stdout.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        #expect(mm.count == 9 && mm[2] <= 1 << 20 && mm[2] > 0)
        // Lifting the limit lets the same data through.
        #expect(try server.cli(["set", "zram0", "mem_limit", "0"]).succeeded)
        try ExternalCommand.require("nbdcopy", [data, server.uri()], timeout: 120)
    }

    @Test func controlSocketAnswersGarbageWithErrors() throws {
        let server = try ZnbdServer(["--size", "16M"])
        defer { server.stop() }
        let connection = try ControlConnection(server.control)
        let garbage = #"this is not json"# + "\n" + #"{"op":"get"}"# + "\n" + #"{"op":"teleport"}"# + "\n"
            + #"{"op":"hot-add","algorithm":"brotli"}"# + "\n"
        try connection.send(Array(garbage.utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: 70000) + [UInt8(ascii: "\n")])
        var kinds: [ControlError.Kind] = []
        while let response = try connection.receive() {
            guard case .failure(let error) = response else {
                Issue.record("garbage was accepted: \(response)")
                break
            }
            kinds.append(error.kind)
        }
        // Four malformed requests, then the line over 64 KiB, after which the server hangs up.
        #expect(kinds == [.invalidArgument, .invalidArgument, .invalidArgument, .invalidArgument, .messageTooLong])

        // One byte over the limit, its newline in the last chunk the server reads, is still too long.
        let justOver = try ControlConnection(server.control)
        try justOver.send([UInt8](repeating: UInt8(ascii: " "), count: ControlServer.requestLimit + 1) + [UInt8(ascii: "\n")])
        #expect(try justOver.receive() == .failure(ControlError(.messageTooLong, "request longer than 65536 bytes: Message too long")))
        let atLimit = try ControlConnection(server.control)
        try atLimit.send([UInt8](repeating: UInt8(ascii: " "), count: ControlServer.requestLimit - 8) + Array(#"["x"]"#.utf8) + [UInt8(ascii: "\n")])
        #expect(try atLimit.receive() == .failure(.invalid("malformed control request")))
        #expect(server.isRunning)
        #expect(try server.cli(["get", "zram0", "initstate"]).stdout == "1\n")
    }

    @Test func clientsBeyondTheLimitAreRefusedNotQueued() throws {
        let server = try ZnbdServer(["--size", "16M"])
        defer { server.stop() }
        // Each idle connection holds a server thread; status proves it is being served.
        var held: [ControlConnection] = []
        for _ in 0..<ControlServer.clientLimit {
            let connection = try ControlConnection(server.control)
            try connection.send(.status)
            guard case .status = try #require(try connection.receive()) else {
                Issue.record("status was not answered")
                return
            }
            held.append(connection)
        }
        let extra = try ControlConnection(server.control)
        guard case .failure(let error) = try #require(try extra.receive()) else {
            Issue.record("a client over the limit was served")
            return
        }
        #expect(error.kind == .busy)
        #expect(try extra.receive() == nil)
        // swapon/mount still see a live server (and do not start a second one).
        #expect(Daemon.isAnswering(server.control))
        // As soon as one hangs up, its place is free again.
        held.removeLast()
        let client = ControlClient(path: server.control)
        #expect(Poll.until(seconds: 10) { (try? client.status()) != nil })
    }
}
