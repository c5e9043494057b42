#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import SwiftZram

@Suite struct DeviceAttributeTests {
    func kind(_ body: () throws -> Void) -> ZramError.Kind? {
        do { try body() } catch { return (error as? ZramError)?.kind }
        return nil
    }

    @Test func readsInTheKernelsFormats() throws {
        let device = ZramDevice(name: "zram0", streams: 2)
        #expect(try device.readAttribute("initstate") == "0\n")
        #expect(try device.readAttribute("disksize") == "0\n")
        #expect(try device.readAttribute("comp_algorithm") == "lzo [lz4] lz4hc zstd \n")
        #expect(try device.readAttribute("streams") == "2\n")
        #expect(try device.readAttribute("bd_stat") == "       0        0        0\n")
        try device.writeAttribute("comp_algorithm", "zstd\n")
        try device.writeAttribute("disksize", "1M\n")
        #expect(try device.readAttribute("initstate") == "1\n")
        #expect(try device.readAttribute("disksize") == "1048576\n")
        #expect(try device.readAttribute("comp_algorithm") == "lzo lz4 lz4hc [zstd] \n")
        #expect(try device.readAttribute("mm_stat") == device.memoryStatistics.kernelText)
        #expect(try device.readAttribute("io_stat") == "       0        0        0        0\n")
    }

    @Test func busyRulesFollowTheKernel() throws {
        let device = ZramDevice(name: "zram0")
        try device.writeAttribute("disksize", "64K")
        #expect(kind { try device.writeAttribute("disksize", "128K") } == .busy)
        #expect(kind { try device.writeAttribute("comp_algorithm", "zstd") } == .busy)
        #expect(kind { try device.writeAttribute("algorithm_params", "level=3") } == .busy)
        #expect(kind { try device.writeAttribute("streams", "1") } == .busy)
        device.open()
        #expect(kind { try device.writeAttribute("reset", "1") } == .busy)
        device.close()
        try device.writeAttribute("reset", "1")
        #expect(try device.readAttribute("initstate") == "0\n")
        #expect(try device.readAttribute("disksize") == "0\n")
    }

    @Test func badValuesAreInvalidAndChangeNothing() throws {
        let device = ZramDevice(name: "zram0")
        #expect(kind { try device.writeAttribute("disksize", "lots") } == .invalidArgument)
        #expect(kind { try device.writeAttribute("disksize", "0") } == .invalidArgument)
        #expect(kind { try device.writeAttribute("comp_algorithm", "lzo-rle") } == .invalidArgument)
        #expect(kind { try device.writeAttribute("algorithm_params", "level=0") } == .invalidArgument)
        #expect(kind { try device.writeAttribute("algorithm_params", "level") } == .invalidArgument)
        #expect(kind { try device.writeAttribute("algorithm_params", "dict=/nonexistent/dict") } == .invalidArgument)
        #expect(kind { try device.writeAttribute("algorithm_params", "algo=zstd level=3") } == .invalidArgument)
        #expect(kind { try device.writeAttribute("mem_limit", "-5") } == .invalidArgument)
        #expect(kind { try device.writeAttribute("mem_used_max", "5") } == .invalidArgument)
        #expect(kind { try device.writeAttribute("reset", "0") } == .invalidArgument)
        #expect(kind { try device.writeAttribute("reset", "65536") } == .invalidArgument, "a u16, as the kernel parses it")
        #expect(kind { try device.writeAttribute("idle", "some") } == .invalidArgument)
        #expect(kind { try device.writeAttribute("streams", "65") } == .invalidArgument)
        #expect(kind { try device.writeAttribute("mm_stat", "1") } == .invalidArgument)
        #expect(kind { try device.writeAttribute("no_such", "1") } == .invalidArgument)
        #expect(kind { _ = try device.readAttribute("reset") } == .invalidArgument)
        #expect(kind { _ = try device.readAttribute("no_such") } == .invalidArgument)
        #expect(try device.readAttribute("comp_algorithm") == "lzo [lz4] lz4hc zstd \n")
        #expect(try device.readAttribute("initstate") == "0\n")
    }

    @Test func memLimitAndPeakAreWritableAtRuntime() throws {
        let device = try ZramDevice.make(diskSize: 1 << 20)
        try device.writeAttribute("mem_limit", "10K")
        #expect(try device.readAttribute("mem_limit") == "12288\n")
        try device.writeAttribute("mem_limit", "0")
        #expect(try device.readAttribute("mem_limit") == "0\n")
        var rng = SplitMix64(seed: 77)
        try device.write(DeviceTestPage.text.bytes(using: &rng), at: 0)
        try device.discard(offset: 0, length: 4096)
        #expect(try device.readAttribute("mem_used_max") != "0\n")
        try device.writeAttribute("mem_used_max", "0")
        #expect(try device.readAttribute("mem_used_max") == "0\n")
    }

    @Test func algorithmParamsLoadADictionary() throws {
        let path = "/tmp/swiftzram-dict-\(getpid())"
        var rng = SplitMix64(seed: 78)
        let sample = DeviceTestPage.text.bytes(using: &rng)
        let fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0o600)
        #expect(fd >= 0)
        _ = sample.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        defer { unlink(path) }

        let device = ZramDevice(name: "zram0")
        try device.writeAttribute("comp_algorithm", "zstd")
        try device.writeAttribute("algorithm_params", "algo=zstd level=5 dict=\(path)")
        #expect(device.compressionParameters.level == 5)
        #expect(device.compressionParameters.dictionary == sample)
        #expect(device.dictionaryPath == path)
        try device.writeAttribute("disksize", "1M")
        let page = DeviceTestPage.text.bytes(using: &rng)
        try device.write(page, at: 4096)
        #expect(try device.read(count: 4096, at: 4096) == page)
    }

    /// EINVAL before disksize, as this host's kernel zram answers `echo all > idle` and `echo 1 > compact`.
    @Test func idleAndCompactNeedAnInitialisedDevice() throws {
        let device = ZramDevice(name: "zram0")
        #expect(kind { try device.writeAttribute("idle", "all") } == .invalidArgument)
        #expect(kind { try device.writeAttribute("compact", "1") } == .invalidArgument)
        try device.writeAttribute("disksize", "1M")
        try device.write([1, 2, 3], at: 0)
        try device.writeAttribute("idle", "all")
        #expect(try device.readAttribute("idle") == "1\n")
        try device.writeAttribute("compact", "1")
    }
}
