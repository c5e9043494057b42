import Testing
@testable import SwiftZram

@Suite struct DeviceMemoryLimitTests {
    @Test(arguments: [CompressionAlgorithm.lz4, .zstd])
    func writesFailCleanlyAtTheLimitAndResumeWhenLifted(algorithm: CompressionAlgorithm) throws {
        let device = try ZramDevice.make(algorithm, diskSize: 16 << 20)
        let limit: UInt64 = 256 << 10
        try device.setMemoryLimit(limit)
        var rng = SplitMix64(seed: 42)
        var written: [Int: [UInt8]] = [:]
        var failures = 0
        var firstFailure: Int?
        for page in 0..<1024 {
            let data = (page % 3 == 0 ? DeviceTestPage.noise : .text).bytes(using: &rng)
            do {
                try device.write(data, at: UInt64(page * pageSize))
                written[page] = data
            } catch {
                #expect((error as? ZramError)?.kind == .memoryLimitReached)
                failures += 1
                if firstFailure == nil { firstFailure = page }
            }
            #expect(device.memoryStatistics.memUsedTotal <= limit)
        }
        #expect(failures > 0)
        #expect(device.ioStatistics.failedWrites == UInt64(failures))
        #expect(device.memoryStatistics.memUsedMax <= limit)
        // Earlier data reads back intact; refused pages read as zeros.
        for page in 0..<1024 {
            let got = try device.read(count: pageSize, at: UInt64(page * pageSize))
            #expect(got == written[page] ?? [UInt8](repeating: 0, count: pageSize), "page \(page)")
        }
        // A refused overwrite keeps the page's old content.
        let keptPage = try #require(written.keys.min())
        var overwriteRefused = false
        for _ in 0..<64 {
            do { try device.write(DeviceTestPage.noise.bytes(using: &rng), at: UInt64(keptPage * pageSize)) } catch {
                overwriteRefused = true
                break
            }
            written[keptPage] = nil
            break
        }
        if overwriteRefused {
            #expect(try device.read(count: pageSize, at: UInt64(keptPage * pageSize)) == written[keptPage])
        }

        try device.setMemoryLimit(0)
        let retry = try #require(firstFailure)
        let data = DeviceTestPage.text.bytes(using: &rng)
        try device.write(data, at: UInt64(retry * pageSize))
        #expect(try device.read(count: pageSize, at: UInt64(retry * pageSize)) == data)
    }

    @Test func sameFilledPagesNeedNoMemoryEvenAtTheLimit() throws {
        let device = try ZramDevice.make(diskSize: 1 << 20)
        try device.setMemoryLimit(4096)
        var rng = SplitMix64(seed: 43)
        for page in 0..<64 {
            try device.write(DeviceTestPage.sameWord.bytes(using: &rng), at: UInt64(page * pageSize))
        }
        #expect(device.memoryStatistics.samePages == 64)
        #expect(device.ioStatistics.failedWrites == 0)
    }
}
