import Foundation
import SwiftZram
import Testing

@testable import ZnbdKit

/// The zram-generator-style configuration file: expressions, the INI reader, its
/// errors with line numbers, and `serve --config` / `check-config` on real files.
@Suite struct ConfigFileTests {
    static let ram8G: Double = 8192

    @Test(arguments: [
        ("min(ram / 2, 4096)", 8192.0, 4096.0),
        ("min(ram / 2, 4096)", 2048, 1024),
        ("max(ram / 4, 1024)", 2048, 1024),
        ("ram", 512, 512),
        ("512", 0, 512),
        ("0.5 * ram", 1000, 500),
        ("(ram + 2) * 3 - 4 / 2", 10, 34),
        ("2 * -3 + 10", 0, 4),
        ("-(-ram)", 7, 7),
        ("ram - ram / 4 - ram / 4", 100, 50),
        ("min(ram, 100, max(1, 2, 3) * 10)", 64, 30),
        ("  ram/2  ", 64, 32),
        ("1 - 2 - 3", 0, -4),
        ("24 / 4 / 2", 0, 3),
    ])
    func expressionsEvaluate(text: String, ram: Double, expected: Double) throws {
        let expression = try SizeExpression.parse(text)
        #expect(try expression.evaluate(ram: ram) == expected)
    }

    @Test(arguments: [
        ("ram /", 6, "expected"),
        ("min()", 5, "expected"),
        ("min(ram", 8, "missing ')'"),
        ("foo * 2", 1, "unknown name 'foo'"),
        ("1 +* 2", 4, "unexpected '*'"),
        ("(ram", 5, "missing ')'"),
        ("ram)", 4, "unexpected ')'"),
        ("1.2.3", 1, "not a number"),
        ("ram 2", 5, "unexpected '2'"),
        ("4G", 2, "unexpected 'G'"),
        ("", 1, "expected"),
    ])
    func badExpressionsNameTheColumn(text: String, column: Int, message: String) {
        #expect {
            _ = try SizeExpression.parse(text)
        } throws: { error in
            guard let error = error as? SizeExpression.ParseError else { return false }
            return error.column == column && error.message.contains(message)
        }
    }

    @Test func divisionByZeroIsAnError() throws {
        let expression = try SizeExpression.parse("ram / (ram - ram)")
        #expect(throws: SizeExpression.EvaluationError(message: "division by zero")) { try expression.evaluate(ram: 1) }
    }

    @Test func deeplyNestedExpressionIsRefusedNotACrash() {
        let text = String(repeating: "(", count: 10_000) + "1" + String(repeating: ")", count: 10_000)
        #expect(throws: SizeExpression.ParseError.self) { try SizeExpression.parse(text) }
        #expect(throws: SizeExpression.ParseError.self) { try SizeExpression.parse(String(repeating: "-", count: 10_000) + "1") }
    }

    /// A flat chain of operators builds a tree as deep as it is long: 100k terms
    /// overflowed the stack when evaluated. It is refused by length instead.
    @Test func longFlatExpressionIsRefusedNotACrash() throws {
        let long = Array(repeating: "0", count: 100_000).joined(separator: "+") + "+1"
        #expect(performing: { try SizeExpression.parse(long) }, throws: { error in
            (error as? SizeExpression.ParseError)?.message.contains("too long") == true
        })
        #expect(throws: SizeExpression.ParseError.self) { try SizeExpression.parse(Array(repeating: "ram", count: 5_000).joined(separator: "*")) }
        // Long but bounded expressions still parse and evaluate.
        let fine = Array(repeating: "1", count: 500).joined(separator: "+")
        #expect(try SizeExpression.parse(fine).evaluate(ram: 0) == 500)
    }

    static let goodFile = """
        # Compressed swap and a scratch disk.
        ; a comment in the other style

        [zram0]
        zram-size = min(ram / 2, 4096)
        compression-algorithm = zstd(level=3)
        swap-priority = 50

          [ zram1 ]
        zram-size=ram/8
        compression-algorithm = lzo-rle
        options = discard\r

        [zram3]
        zram-size = 512
        fs-type = xfs
        mount-point = /var/scratch
        mem-limit = 256M

        [zram4]
        mount-point = /srv/tmp
        mem-limit = none

        [zram5]
        zram-size = 0
        """

    @Test func goodFileParses() throws {
        let config = try ZramConfig.parse(Self.goodFile, file: "good.conf")
        #expect(config.devices.map(\.name) == ["zram0", "zram1", "zram3", "zram4", "zram5"])
        #expect(config.devices.map(\.line) == [4, 9, 14, 20, 24])
        let specs = try config.specs(ramBytes: 8 << 30)
        // zram5 has size 0: no device, as in zram-generator.
        #expect(specs.map(\.name) == ["zram0", "zram1", "zram3", "zram4"])
        let zram0 = specs[0].spec, zram1 = specs[1].spec, zram3 = specs[2].spec, zram4 = specs[3].spec
        #expect(zram0 == DeviceSpec(size: 4 << 30, algorithm: .zstd, level: 3, swapPriority: 50))
        #expect(zram1 == DeviceSpec(size: 1 << 30, algorithm: .lzo, options: "discard"))
        #expect(zram3 == DeviceSpec(size: 512 << 20, memLimit: 256 << 20, fsType: "xfs", mountPoint: "/var/scratch"))
        // Defaults: min(ram / 2, 4096) MiB; fs-type ext4 when there is a mount-point.
        #expect(zram4 == DeviceSpec(size: 4 << 30, fsType: "ext4", mountPoint: "/srv/tmp"))
        // Sizes are whole pages.
        let odd = try ZramConfig.parse("[zram0]\nzram-size = 1.0001\n").specs(ramBytes: 0)
        #expect(odd[0].spec.size == 1 << 20)
        #expect(try ZramConfig.parse("# nothing\n").devices.isEmpty)
    }

    @Test(arguments: [
        ("zram-size = 1\n", 1, "before any [zramN] section"),
        ("[zram0]\nzram-size = min(ram / 2, 4096\n", 2, "missing ')'"),
        ("[zram0]\n\n[swap]\n", 3, "is not a device name"),
        ("[zram0\n", 1, "must end with ']'"),
        ("[zram0]\n[zram00]\n", 2, "is not a device name"),
        ("[zram0]\n# ok\n[zram0]\n", 3, "already defined on line 1"),
        ("[zram0]\nzram-size = 1\nzram-size = 2\n", 3, "set twice"),
        ("[zram0]\ncolour = blue\n", 2, "unknown key 'colour'"),
        ("[zram0]\njust some words\n", 2, "expected 'key = value'"),
        ("[zram0]\nswap-priority = 100000\n", 2, "swap-priority"),
        ("[zram0]\nswap-priority = high\n", 2, "swap-priority"),
        ("[zram0]\ncompression-algorithm = brotli\n", 2, "unknown compression-algorithm 'brotli'"),
        ("[zram0]\ncompression-algorithm = zstd(level=99)\n", 2, "out of range"),
        ("[zram0]\ncompression-algorithm = zstd(dict=/x)\n", 2, "only (level=N)"),
        ("[zram0]\nmem-limit = lots\n", 2, "mem-limit 'lots'"),
        ("[zram0]\nmem-limit = 8E\n", 2, "mem-limit '8E' is too large"),
        ("[zram0]\nmount-point = relative/dir\n", 2, "absolute path"),
        ("[zram0]\nfs-type = ext4; rm -rf /\n", 2, "not a file system type"),
        ("[zram0]\nzram-size =\n", 2, "has no value"),
        ("\n\n[zram7]\nfs-type = swap\nmount-point = /mnt\n", 3, "mount-point but fs-type swap"),
    ])
    func badFilesNameTheLine(text: String, line: Int, message: String) {
        #expect {
            _ = try ZramConfig.parse(text, file: "bad.conf")
        } throws: { error in
            guard let error = error as? ZramConfig.Error else { return false }
            return error.line == line && error.message.contains(message) && error.description.hasPrefix("bad.conf:\(line): ")
        }
    }

    @Test func sizesThatCannotBeDevicesAreErrorsWithTheirLine() throws {
        let config = try ZramConfig.parse("[zram0]\nzram-size = 1\n[zram1]\n\nzram-size = ram - 2 * ram\n", file: "neg.conf")
        #expect {
            _ = try config.specs(ramBytes: 1 << 30, file: "neg.conf")
        } throws: { error in
            (error as? ZramConfig.Error)?.description.hasPrefix("neg.conf:5: zram-size 'ram - 2 * ram'") == true
        }
        let zero = try ZramConfig.parse("[zram0]\nzram-size = ram / (ram - ram)\n")
        #expect(throws: ZramConfig.Error.self) { try zero.specs(ramBytes: 1 << 30) }
        // check-config and serve agree: past the largest device (32 PiB) is an error here too.
        let largest = ZramDevice.maximumDiskSize / 1_048_576
        #expect(try ZramConfig.parse("[zram0]\nzram-size = \(largest)\n").specs(ramBytes: 0)[0].spec.size == ZramDevice.maximumDiskSize)
        let huge = try ZramConfig.parse("[zram0]\nzram-size = \(largest + 1)\n")
        #expect(performing: { try huge.specs(ramBytes: 0) }, throws: { error in
            (error as? ZramConfig.Error)?.message.contains("32 PiB") == true
        })
    }

    // MARK: - Through the binary

    @Test func checkConfigPrintsDevicesAndFailsWithTheLine() throws {
        let directory = try ZnbdServer.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let good = directory + "/good.conf", bad = directory + "/bad.conf"
        try Self.goodFile.write(toFile: good, atomically: true, encoding: .utf8)
        try "[zram0]\nzram-size = 64\n\ncompression-algorithm = zstd(\n".write(toFile: bad, atomically: true, encoding: .utf8)

        let table = try ExternalCommand.require(ZnbdServer.binary, ["check-config", "--ram", "2G", "--bytes", good])
        let rows = table.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(rows.first == ["NAME", "DISKSIZE", "ALGORITHM", "LEVEL", "MEM-LIMIT", "TYPE", "PRIORITY/MOUNTPOINT", "WRITEBACK", "TIERING"])
        #expect(rows.dropFirst().map { Array($0.prefix(2)) } == [
            ["zram0", "1073741824"], ["zram1", "268435456"], ["zram3", "536870912"], ["zram4", "1073741824"],
        ])
        #expect(rows[1] == ["zram0", "1073741824", "zstd", "3", "-", "swap", "50", "-", "off"])
        #expect(rows[3] == ["zram3", "536870912", "-", "-", "268435456", "xfs", "/var/scratch", "-", "off"])

        let failed = try ExternalCommand.run(ZnbdServer.binary, ["check-config", bad])
        #expect(failed.status != 0)
        #expect(failed.stderr.contains("\(bad):4: compression-algorithm 'zstd(': missing ')'"), "\(failed)")
        let missing = try ExternalCommand.run(ZnbdServer.binary, ["check-config", directory + "/none.conf"])
        #expect(missing.status != 0 && missing.stderr.contains("none.conf:0: cannot read the file"), "\(missing)")
    }

    @Test func serveCreatesTheConfiguredDevices() throws {
        let directory = try ZnbdServer.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/znbd.conf"
        try """
            [zram0]
            zram-size = 64
            compression-algorithm = zstd(level=5)

            [zram2]
            zram-size = min(ram, 32) / 2
            mem-limit = 8M
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let server = try ZnbdServer(["--config", file, "--algorithm", "lzo"])
        defer { server.stop() }
        let table = try server.cli(["status", "--bytes", "--raw", "--noheadings", "--output", "name,algorithm,disksize,mem-limit"])
        #expect(table.stdout == "zram0 zstd 67108864 0\nzram2 lzo 16777216 8388608\n", "\(table)")
        try ExternalCommand.require("nbdinfo", ["--size", server.uri("zram2")])

        let bad = directory + "/bad.conf"
        try "[zram0]\nzram-size = 64 +\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let refused = try ExternalCommand.run(
            ZnbdServer.binary, ["serve", "--config", bad, "--unix", directory + "/b.sock", "--control", directory + "/b.ctl"], timeout: 30)
        #expect(refused.status != 0 && refused.stderr.contains("bad.conf:2: zram-size"), "\(refused)")
        let both = try ExternalCommand.run(ZnbdServer.binary, ["serve", "--config", file, "--size", "1G"], timeout: 30)
        #expect(both.status != 0 && both.stderr.contains("--config"), "\(both)")
    }
}

/// `compression-algorithm = lz4 zstd(level=3)`: the primary, then recompression algorithms.
@Suite struct RecompressionConfigTests {
    @Test func theListGivesThePrimaryAndRecompressionPrioritiesInOrder() throws {
        let text = "[zram0]\ncompression-algorithm = lz4  zstd(level=3)\tlz4hc(level=12) lzo-rle\n[zram1]\ncompression-algorithm = zstd\n"
        let specs = try ZramConfig.parse(text).specs(ramBytes: 8 << 30)
        #expect(specs[0].spec.algorithm == .lz4 && specs[0].spec.level == nil)
        #expect(specs[0].spec.recompression == [
            RecompressionChoice(algorithm: .zstd, level: 3), RecompressionChoice(algorithm: .lz4hc, level: 12),
            RecompressionChoice(algorithm: .lzo),
        ])
        #expect(specs[1].spec.recompression.isEmpty)
    }

    @Test(arguments: [
        ("[zram0]\ncompression-algorithm = lz4 zstd lz4hc lzo zstd\n", "at most one algorithm and 3"),
        ("[zram0]\ncompression-algorithm = lz4 zstd(level=30)\n", "out of range"),
        ("[zram0]\ncompression-algorithm = lz4 brotli\n", "unknown compression-algorithm 'brotli'"),
        ("[zram0]\ncompression-algorithm = lz4 zstd(level=3\n", "missing ')'"),
    ])
    func badListsAreErrorsWithTheirLine(text: String, message: String) {
        do {
            _ = try ZramConfig.parse(text, file: "r.conf")
            Issue.record("'\(text)' parsed")
        } catch {
            #expect(error.line == 2 && error.message.contains(message), "\(error)")
        }
    }

    /// zram-generator#215: the secondary's parameters went to `recompress`, which starts a
    /// recompression. They belong to `algorithm_params priority=N`.
    @Test func parametersGoToAlgorithmParamsNeverToRecompress() throws {
        let spec = try ZramConfig.parse("[zram0]\ncompression-algorithm = lz4 zstd(level=3) lz4hc\n").specs(ramBytes: 1 << 30)[0].spec
        #expect(spec.recompressionWrites.map { "\($0.attribute)=\($0.value)" } == [
            "recomp_algorithm=algo=zstd priority=1", "algorithm_params=priority=1 level=3",
            "recomp_algorithm=algo=lz4hc priority=2",
        ])
        #expect(!spec.recompressionWrites.contains { $0.attribute == "recompress" })
        // Applied to a device in zram's order, before disksize, they configure it and start nothing.
        let device = ZramDevice(name: "zram-config", streams: 1, queuePages: 0)
        try device.setAlgorithm(spec.algorithm ?? .lz4)
        for (attribute, value) in spec.recompressionWrites { try device.writeAttribute(attribute, value) }
        try device.setDiskSize(1 << 20)
        #expect(try device.readAttribute("recomp_algorithm") == "#1: lzo lz4 lz4hc [zstd] \n#2: lzo lz4 [lz4hc] zstd \n")
        #expect(device.recompressionParameters.map { $0?.level } == [3, 9, nil])
        #expect(device.recompressionStatistics.pages == 0)
    }

    @Test func serveConfiguresRecompressionFromTheConfig() throws {
        let directory = try ZnbdServer.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/znbd.conf"
        try "[zram0]\nzram-size = 16\ncompression-algorithm = lz4 zstd(level=5)\n".write(toFile: file, atomically: true, encoding: .utf8)
        let server = try ZnbdServer(["--config", file])
        defer { server.stop() }
        let read = try server.cli(["get", "zram0", "recomp_algorithm"])
        #expect(read.stdout == "#1: lzo lz4 lz4hc [zstd] \n", "\(read)")
        let check = try ExternalCommand.run(ZnbdServer.binary, ["check-config", file], timeout: 30)
        #expect(check.stdout.contains("lz4 zstd(level=5)"), "\(check)")

        // 4 MiB of real anonymous memory in, idle, recompressed, and out again unchanged.
        let data = try AnonymousMemoryCorpus.bytes(at: 64 << 20, count: 4 << 20)
        let input = directory + "/in.bin", output = directory + "/out.bin"
        try data.write(to: URL(fileURLWithPath: input))
        try ExternalCommand.require("nbdcopy", [input, server.uri("zram0")])
        #expect(try server.cli(["set", "zram0", "idle", "all"]).succeeded)
        let idle = try #require(Int(try server.cli(["get", "zram0", "idle"]).stdout.dropLast()))
        #expect(idle > 0)
        let busy = try server.cli(["set", "zram0", "recomp_algorithm", "algo=lz4hc priority=2"])
        #expect(busy.status != 0 && busy.stderr.contains("EBUSY"), "\(busy)")
        #expect(try server.cli(["set", "zram0", "recompress", "type=idle"]).succeeded)
        let json = try server.cli(["status", "--json"])
        let status = try JSONDecoder().decode(ServerStatus.self, from: Data(json.stdout.utf8))
        let zram0 = try #require(status.devices.first)
        #expect(zram0.idle_pages == 0, "recompression clears the idle marks")
        #expect((zram0.recompression?["pages"] ?? 0) > 0 && (zram0.recompression?["saved_bytes"] ?? 0) > 0, "\(json)")
        try ExternalCommand.require("nbdcopy", [server.uri("zram0"), output])
        let back = try Data(contentsOf: URL(fileURLWithPath: output))
        #expect(back.count == 16 << 20 && back.prefix(data.count) == data, "the device reads back what was written")
    }
}

/// `tiering = on` and `tiering-high-watermark = SIZE` (beyond zram-generator).
@Suite struct TieringConfigTests {
    @Test func tieringKeysGiveTheAttributeWrites() throws {
        let text = "[zram0]\nwriteback-device = /var/lib/znbd/zram0.img\ntiering = on\ntiering-high-watermark = 768M\n[zram1]\ntiering-high-watermark = 1G\n"
        let specs = try ZramConfig.parse(text).specs(ramBytes: 8 << 30)
        #expect(specs[0].spec.tiering && specs[0].spec.tieringHighWatermark == 768 << 20)
        #expect(specs[0].spec.tieringWrites.map { "\($0.attribute)=\($0.value)" } == [
            "tiering_high_watermark=805306368", "tiering_enable=1",
        ])
        #expect(specs[1].spec.tieringWrites.isEmpty, "off by default: the kernel's behaviour")
    }

    @Test func checkConfigShowsTiering() throws {
        let directory = try ZnbdServer.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/tiering.conf"
        try "[zram0]\nzram-size = 64\nwriteback-device = /var/lib/znbd/zram0.img\ntiering = on\ntiering-high-watermark = 8M\n[zram1]\nzram-size = 64\ntiering = on\n[zram2]\nzram-size = 64\n"
            .write(toFile: file, atomically: true, encoding: .utf8)
        let table = try ExternalCommand.require(ZnbdServer.binary, ["check-config", "--bytes", file])
        let tiering = table.stdout.split(separator: "\n").dropFirst().map { String($0.split(separator: " ").last ?? "") }
        #expect(tiering == ["on:8388608", "on", "off"], "\(table)")
    }

    @Test(arguments: [
        ("[zram0]\ntiering = maybe\n", "tiering 'maybe'"),
        ("[zram0]\ntiering-high-watermark = lots\n", "tiering-high-watermark 'lots'"),
    ])
    func badValuesAreErrorsWithTheirLine(text: String, message: String) {
        do {
            _ = try ZramConfig.parse(text, file: "t.conf")
            Issue.record("'\(text)' parsed")
        } catch {
            #expect(error.line == 2 && error.message.contains(message), "\(error)")
        }
    }
}
