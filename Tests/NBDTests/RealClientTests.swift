import Foundation
import Testing
@testable import NBD

/// Real NBD clients against the in-memory export. Serialized: they are heavy on two cores.
@Suite(.serialized) struct RealClientTests {
    @Test func nbdinfoJSONReportsSizeAndFlags() throws {
        try withServer(size: 96 << 20) { s in
            let r = try Tools.run("nbdinfo", ["--json", s.uri()])
            #expect(r.status == 0, "\(r.output)")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            let export = try #require((json["exports"] as? [[String: Any]])?.first, "\(r.stdout)")
            #expect(export["export-size"] as? Int == 96 << 20)
            for flag in ["can_flush", "can_fua", "can_trim", "can_zero", "can_fast_zero", "can_cache", "can_df", "can_multi_conn"] {
                #expect(export[flag] as? Bool == true, "\(flag): \(r.stdout)")
            }
            #expect(export["is_read_only"] as? Bool == false)
            #expect(export["block_size_preferred"] as? Int == 4096)
            #expect(export["block_size_maximum"] as? Int == 32 << 20)
            #expect(json["protocol"] as? String == "newstyle-fixed")
        }
    }

    @Test func nbdinfoListShowsEveryExport() throws {
        let other = MemoryExport(name: "zram1", size: 1 << 30, description: "1 GiB lz4")
        try withServer(extraExports: [other]) { s in
            let r = try Tools.run("nbdinfo", ["--list", s.uri("")])
            #expect(r.status == 0, "\(r.output)")
            #expect(r.stdout.contains("export=\"zram0\"") || r.stdout.contains("zram0"))
            #expect(r.stdout.contains("zram1"))
            #expect(r.stdout.contains("1 GiB lz4"))
        }
    }

    @Test func nbdinfoMapShowsDataAndHoles() throws {
        try withServer(size: 16 << 20) { s in
            let c = try s.connected()
            #expect(try c.write(offset: 1 << 20, [UInt8](repeating: 9, count: 1 << 20)) == 0)
            let r = try Tools.run("nbdinfo", ["--map", s.uri()])
            #expect(r.status == 0, "\(r.output)")
            let lines = r.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
            // "offset length type description"
            #expect(lines.count == 3, "\(r.stdout)")
            #expect(lines.map { $0[0] } == ["0", "1048576", "2097152"])
            #expect(lines.map { $0[2] } == ["3", "0", "3"])
            #expect(r.stdout.contains("data") && r.stdout.contains("hole,zero"))
        }
    }

    @Test func nbdcopyRoundTripWithMultiConnection() throws {
        let size = 128 << 20
        try withServer(size: UInt64(size)) { s in
            let source = s.directory + "/source.img"
            let back = s.directory + "/back.img"
            defer {
                unlink(source)
                unlink(back)
            }
            // Mostly random data, with zero stretches so sparse handling is exercised too.
            var data = Data(count: size)
            data.withUnsafeMutableBytes { raw in
                let words = raw.bindMemory(to: UInt64.self)
                var x: UInt64 = 0x1234_5678_9ABC_DEF1
                for i in 0..<words.count {
                    if (i / 4096) % 5 == 3 {
                        words[i] = 0
                        continue
                    }
                    x ^= x << 13
                    x ^= x >> 7
                    x ^= x << 17
                    words[i] = x
                }
            }
            try data.write(to: URL(fileURLWithPath: source))
            let up = try Tools.run("nbdcopy", ["--connections=4", "--requests=16", source, s.uri()], timeout: .seconds(240))
            #expect(up.status == 0, "\(up.output)")
            let down = try Tools.run("nbdcopy", ["--connections=4", s.uri(), back], timeout: .seconds(240))
            #expect(down.status == 0, "\(down.output)")
            let copied = try Data(contentsOf: URL(fileURLWithPath: back))
            #expect(copied.count == size)
            #expect(copied == data)
            #expect(s.export.bytes(at: 77 << 20, count: 4096) == [UInt8](data[(77 << 20)..<((77 << 20) + 4096)]))
        }
    }

    @Test func qemuIOPatterns() throws {
        try withServer(size: 64 << 20) { s in
            let commands = [
                "write -P 0xab 0 1M", "read -P 0xab 0 1M",
                "write -P 0x11 4097 513", "read -P 0x11 4097 513", "read -P 0xab 0 4097", "read -P 0xab 4610 1000",
                "write -z 1M 1M", "read -P 0 1M 1M",
                "write -P 0xcd 2M 3M", "discard 2M 1M", "read -P 0 2M 1M", "read -P 0xcd 3M 2M",
                "write -z -u 5M 512k", "read -P 0 5M 512k",
                "aio_write -P 0x22 8M 64k", "aio_write -P 0x33 9M 64k", "aio_flush", "read -P 0x22 8M 64k", "read -P 0x33 9M 64k",
                "write -P 0x44 63M 1M", "read -P 0x44 63M 1M", "flush",
            ]
            let r = try Tools.run("qemu-io", ["-f", "raw"] + commands.flatMap { ["-c", $0] } + [s.uri()])
            #expect(r.status == 0, "\(r.output)")
            #expect(!r.output.contains("Pattern verification failed"), "\(r.output)")
            #expect(!r.output.lowercased().contains("error"), "\(r.output)")
            #expect(r.stdout.components(separatedBy: "read ").count - 1 >= 10, "\(r.output)")
            #expect(s.export.bytes(at: 4097, count: 513) == [UInt8](repeating: 0x11, count: 513))
        }
    }

    @Test func fioVerifyFourJobsQueueDepth16() throws {
        try withServer(size: 256 << 20) { s in
            let r = try Tools.run(
                "fio",
                [
                    "--name=verify", "--ioengine=nbd", "--uri=\(s.uri())", "--rw=randwrite", "--bs=4k",
                    "--iodepth=16", "--numjobs=4", "--size=16m", "--offset_increment=32m",
                    "--verify=crc32c", "--do_verify=1", "--verify_fatal=1", "--verify_state_save=0", "--buffer_compress_percentage=60",
                    "--group_reporting", "--output-format=json",
                ], timeout: .seconds(240))
            #expect(r.status == 0, "\(r.output)")
            // fio prints "fio: connected to NBD server" lines before the JSON.
            let text = r.stdout[(r.stdout.firstIndex(of: "{") ?? r.stdout.startIndex)...]
            let json = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "\(r.output)")
            let job = try #require((json["jobs"] as? [[String: Any]])?.first)
            #expect(job["error"] as? Int == 0, "\(r.output)")
            let write = try #require(job["write"] as? [String: Any])
            #expect(write["io_bytes"] as? Int == 4 * (16 << 20))
            let read = try #require(job["read"] as? [String: Any])
            #expect(read["io_bytes"] as? Int == 4 * (16 << 20), "verify reads")
        }
    }
}
