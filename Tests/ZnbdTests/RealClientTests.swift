import Foundation
import Testing

@testable import ZnbdKit

/// znbd against the real NBD clients: libnbd's tools, qemu-io and fio.
@Suite(.serialized) struct RealClientTests {
    func json(_ text: String) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    @Test func nbdinfoSeesEveryFlagAndTheSize() throws {
        let server = try ZnbdServer(["--size", "64M", "--algorithm", "zstd"])
        defer { server.stop() }
        let info = try json(ExternalCommand.require("nbdinfo", ["--json", server.uri()]).stdout)
        #expect(info["structured"] as? Bool == true)
        let export = try #require((info["exports"] as? [[String: Any]])?.first)
        #expect(export["export-size"] as? Int == 64 << 20)
        for flag in ["can_trim", "can_zero", "can_fast_zero", "can_flush", "can_fua", "can_multi_conn", "can_cache", "can_df"] {
            #expect(export[flag] as? Bool == true, "\(flag)")
        }
        #expect(export["is_read_only"] as? Bool == false)
        #expect((export["contexts"] as? [String])?.contains("base:allocation") == true)
        #expect(export["block_size_preferred"] as? Int == 4096)
    }

    @Test func listShowsEveryDeviceWithItsDescription() throws {
        let server = try ZnbdServer(["--size", "1G", "--devices", "2"])
        defer { server.stop() }
        let listing = try ExternalCommand.require("nbdinfo", ["--list", "--json", "nbd+unix://?socket=\(server.socket)"]).stdout
        let exports = try #require(try json(listing)["exports"] as? [[String: Any]])
        #expect(exports.compactMap { $0["export-name"] as? String } == ["zram0", "zram1"])
        #expect(exports.first?["description"] as? String == "1G lz4")
    }

    @Test func mapShowsHolesZerosAndData() throws {
        let server = try ZnbdServer(["--size", "16M"])
        defer { server.stop() }
        try ExternalCommand.require("qemu-io", ["-f", "raw", "-c", "write -P 0x5a 1M 64k", "-c", "write -z 2M 64k", server.uri()])
        let map = try ExternalCommand.require("nbdinfo", ["--map", "--json", server.uri()]).stdout
        let extents = try #require(JSONSerialization.jsonObject(with: Data(map.utf8)) as? [[String: Any]])
        let summary = extents.map { "\($0["offset"] as? Int ?? -1)+\($0["length"] as? Int ?? -1):\($0["type"] as? Int ?? -1)" }
        // data at 1M; write -z may punch a hole (3) or store zeros (2): either reads as zeros.
        #expect(summary.first == "0+1048576:3")
        #expect(summary.dropFirst().first == "1048576+65536:0")
        #expect(extents.last?["type"] as? Int == 3)
    }

    @Test func qemuIOPatternsRoundTrip() throws {
        let server = try ZnbdServer(["--size", "32M"])
        defer { server.stop() }
        let commands = [
            "write -P 0x11 0 1M", "write -P 0x22 4095 3", "write -P 0x33 1M 100k",
            "write -z 512k 8k", "discard 768k 64k", "write -P 0x44 10000 5000",
        ]
        try ExternalCommand.require("qemu-io", ["-f", "raw"] + commands.flatMap { ["-c", $0] } + [server.uri()])
        let checks = [
            "read -P 0x11 0 4095", "read -P 0x22 4095 3", "read -P 0x11 4098 5902", "read -P 0x44 10000 5000",
            "read -P 0x11 15000 509288", "read -P 0 512k 8k", "read -P 0 768k 64k", "read -P 0x11 832k 192k",
            "read -P 0x33 1M 100k", "read -P 0 1124k 1M",
        ]
        let result = try ExternalCommand.require("qemu-io", ["-f", "raw"] + checks.flatMap { ["-c", $0] } + [server.uri()])
        #expect(!result.stdout.contains("Pattern verification failed"), "\(result.stdout)")
    }

    @Test func nbdcopyRoundTripsHundredsOfMegabytesOverFourConnections() throws {
        let server = try ZnbdServer(["--size", "256M"])
        defer { server.stop() }
        let source = server.directory + "/source.bin", back = server.directory + "/back.bin"
        // Mixed data: compressible text, zeros and noise.
        try ExternalCommand.require("bash", ["-c", """
            set -e
            for i in $(seq 64); do
              head -c 1M /dev/urandom; head -c 1M /dev/zero
              yes "znbd compresses pages $i" | head -c 2M
            done > \(source)
            """])
        try ExternalCommand.require("nbdcopy", ["-C", "4", "--flush", source, server.uri()], timeout: 300)
        try ExternalCommand.require("nbdcopy", ["-C", "4", server.uri(), back], timeout: 300)
        try ExternalCommand.require("cmp", [source, back])
        let status = try server.cli(["status", "--json"])
        #expect(status.succeeded, "\(status)")
        let device = try #require((try json(status.stdout)["devices"] as? [[String: Any]])?.first)
        let orig = try #require((device["mm_stat"] as? [String: Any])?["orig_data_size"] as? Int)
        // 192 MiB of non-zero data; the zero MiBs may arrive as writes or as zero requests.
        #expect(orig >= 192 << 20 && orig <= 256 << 20)
    }

    @Test func fioVerifiesOverFourConnectionsAtQueueDepthSixteen() throws {
        let server = try ZnbdServer(["--size", "256M"])
        defer { server.stop() }
        let result = try ExternalCommand.require("fio", [
            "--name=verify", "--ioengine=nbd", "--uri=\(server.uri())", "--rw=randwrite", "--bs=4k",
            "--iodepth=16", "--numjobs=4", "--size=32M", "--offset_increment=64M", "--verify=crc32c",
            "--buffer_compress_percentage=60", "--refill_buffers", "--group_reporting", "--verify_state_save=0",
        ], timeout: 300)
        #expect(result.stdout.contains("err= 0"), "\(result.stdout)")
        #expect(!result.stdout.contains("verify: bad"), "\(result.stdout)")
    }
}
