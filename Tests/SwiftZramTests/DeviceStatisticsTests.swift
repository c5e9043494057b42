import Testing
@testable import SwiftZram

@Suite struct DeviceStatisticsTests {
    @Test(arguments: CompressionAlgorithm.allCases)
    func sameFilledPagesAllocateNothing(algorithm: CompressionAlgorithm) throws {
        let device = try ZramDevice.make(algorithm, diskSize: 1 << 20)
        var rng = SplitMix64(seed: 3)
        let n = 37
        for page in 0..<n {
            let kind: DeviceTestPage = page % 2 == 0 ? .zeros : .sameWord
            try device.write(kind.bytes(using: &rng), at: UInt64(page * pageSize))
        }
        let stat = device.memoryStatistics
        #expect(stat.samePages == UInt64(n))
        #expect(stat.origDataSize == UInt64(n * pageSize))
        #expect(stat.comprDataSize == 0)
        #expect(stat.memUsedTotal == 0)
        #expect(stat.hugePages == 0)
    }

    @Test func sameFilledPagesReadBack() throws {
        let device = try ZramDevice.make(diskSize: 1 << 20)
        var rng = SplitMix64(seed: 4)
        let page = DeviceTestPage.sameWord.bytes(using: &rng)
        try device.write(page, at: 8192)
        #expect(try device.read(count: pageSize, at: 8192) == page)
        // Unaligned slices of a same-filled page keep the word's phase.
        #expect(try device.read(count: 13, at: 8192 + 5) == Array(page[5..<18]))
    }

    @Test(arguments: CompressionAlgorithm.allCases)
    func overwritingNeverDoubleCounts(algorithm: CompressionAlgorithm) throws {
        let device = try ZramDevice.make(algorithm, diskSize: 1 << 20)
        var rng = SplitMix64(seed: 5)
        let kinds: [DeviceTestPage] = [.text, .noise, .zeros, .records, .sameWord, .pointers, .noise, .text]
        for kind in kinds {
            try device.write(kind.bytes(using: &rng), at: 0)
            // Reading the statistics waits for the compression queue, so every version is stored once.
            _ = device.memoryStatistics
        }
        let stat = device.memoryStatistics
        #expect(stat.origDataSize == UInt64(pageSize))
        #expect(stat.samePages == 0)
        #expect(stat.hugePages == 0)
        #expect(stat.hugePagesSince == 2)  // the two noise pages
        #expect(stat.comprDataSize > 0 && stat.comprDataSize < UInt64(pageSize))
        #expect(stat.memUsedTotal >= stat.comprDataSize)
    }

    @Test func incompressiblePagesAreStoredRaw() throws {
        let device = try ZramDevice.make(diskSize: 1 << 20)
        var rng = SplitMix64(seed: 6)
        let pages = (0..<5).map { _ in DeviceTestPage.noise.bytes(using: &rng) }
        for (i, page) in pages.enumerated() { try device.write(page, at: UInt64(i * pageSize)) }
        let stat = device.memoryStatistics
        #expect(stat.hugePages == 5)
        #expect(stat.hugePagesSince == 5)
        #expect(stat.comprDataSize == UInt64(5 * pageSize))
        for (i, page) in pages.enumerated() {
            #expect(try device.read(count: pageSize, at: UInt64(i * pageSize)) == page)
        }
    }

    @Test func discardDecrementsExactly() throws {
        let device = try ZramDevice.make(diskSize: 1 << 20)
        var rng = SplitMix64(seed: 7)
        let kinds: [DeviceTestPage] = [.text, .noise, .zeros, .records, .sameWord, .pointers]
        for (i, kind) in kinds.enumerated() {
            try device.write(kind.bytes(using: &rng), at: UInt64(i * pageSize))
        }
        let before = device.memoryStatistics
        // Pages 1 (noise, huge) and 2 (zeros, same) are covered whole; pages 0 and 3 only partly.
        try device.discard(offset: UInt64(pageSize - 100), length: UInt64(2 * pageSize + 200))
        let after = device.memoryStatistics
        #expect(after.origDataSize == before.origDataSize - UInt64(2 * pageSize))
        #expect(after.samePages == before.samePages - 1)
        #expect(after.hugePages == before.hugePages - 1)
        #expect(after.hugePagesSince == before.hugePagesSince)
        #expect(device.ioStatistics.notifyFree == 2)
        // The partial edges read as zeros now.
        #expect(try device.read(count: 100, at: UInt64(pageSize - 100)) == [UInt8](repeating: 0, count: 100))
        #expect(try device.read(count: 100, at: UInt64(3 * pageSize)) == [UInt8](repeating: 0, count: 100))

        try device.discard(offset: 0, length: UInt64(1 << 20))
        let empty = device.memoryStatistics
        #expect(empty.origDataSize == 0)
        #expect(empty.comprDataSize == 0)
        #expect(empty.memUsedTotal == 0)
        #expect(empty.samePages == 0)
        #expect(empty.hugePages == 0)
    }

    @Test func writeZeroesWithoutHolesKeepsZeroPages() throws {
        let device = try ZramDevice.make(diskSize: 1 << 20)
        var rng = SplitMix64(seed: 8)
        try device.write(DeviceTestPage.text.bytes(using: &rng), at: 0)
        try device.writeZeroes(offset: 0, length: UInt64(3 * pageSize), deallocate: false)
        let stat = device.memoryStatistics
        #expect(stat.samePages == 3)
        #expect(stat.origDataSize == UInt64(3 * pageSize))
        #expect(stat.memUsedTotal == 0)
        var runs: [(UInt64, PageAllocation)] = []
        try device.allocationStatus(offset: 0, length: UInt64(5 * pageSize)) { runs.append(($0, $1)); return true }
        #expect(runs.map(\.0) == [UInt64(3 * pageSize), UInt64(2 * pageSize)])
        #expect(runs.map(\.1) == [.zeroFilled, .unallocated])
    }

    @Test func allocationStatusReportsRuns() throws {
        let device = try ZramDevice.make(diskSize: 8 << 20)
        var rng = SplitMix64(seed: 9)
        try device.write(DeviceTestPage.text.bytes(using: &rng) + DeviceTestPage.text.bytes(using: &rng), at: UInt64(pageSize))
        try device.write(DeviceTestPage.zeros.bytes(using: &rng), at: UInt64(3 * pageSize))
        var runs: [(UInt64, PageAllocation)] = []
        try device.allocationStatus(offset: 100, length: UInt64(6 << 20)) { runs.append(($0, $1)); return true }
        #expect(runs.map(\.1) == [.unallocated, .data, .zeroFilled, .unallocated])
        #expect(runs.map(\.0) == [UInt64(pageSize - 100), UInt64(2 * pageSize), UInt64(pageSize), UInt64(6 << 20) - UInt64(4 * pageSize) + 100])
        // Stopping early is honoured.
        var calls = 0
        try device.allocationStatus(offset: 0, length: UInt64(6 << 20)) { _, _ in calls += 1; return false }
        #expect(calls == 1)
    }

    @Test func kernelTextMatchesZramFormat() {
        var stat = MemoryStatistics()
        stat.origDataSize = 421_601_280
        stat.comprDataSize = 139_000_000
        stat.memUsedTotal = 143_527_936
        stat.samePages = 19_751
        #expect(stat.kernelText == "421601280 139000000 143527936        0        0    19751        0        0        0\n")
        var io = IOStatistics()
        io.notifyFree = 12
        #expect(io.kernelText == "       0        0        0       12\n")
    }

    /// An overwrite through the compression queue leaves the object it replaced to the
    /// compressor thread: every one of them must be freed, so a full discard leaves nothing.
    @Test func queuedOverwritesFreeWhatTheyReplace() throws {
        let device = try ZramDevice.make(diskSize: 4 << 20, queuePages: 64)
        var rng = SplitMix64(seed: 11)
        let pages = 200
        for round in 0..<3 {
            for i in 0..<pages { try device.write(DeviceTestPage.records.bytes(using: &rng), at: UInt64(i * pageSize)) }
            if round == 0 { #expect(device.memoryStatistics.hugePages == 0) }
        }
        let written = device.memoryStatistics
        #expect(written.origDataSize == UInt64(pages * pageSize))
        #expect(written.memUsedTotal < UInt64(pages * pageSize))
        try device.discard(offset: 0, length: 4 << 20)
        let stat = device.memoryStatistics
        #expect(stat.origDataSize == 0)
        #expect(stat.comprDataSize == 0)
        #expect(stat.memUsedTotal == 0)
    }

    /// Inline, the peak after a burst of writes is what they left; with the queue it also
    /// saw the raw pages the queue held before they were compressed.
    @Test(arguments: [0, ZramDevice.defaultQueuePages])
    func memUsedMaxTracksPeakAndResets(queuePages: Int) throws {
        let device = try ZramDevice.make(diskSize: 4 << 20, queuePages: queuePages)
        var rng = SplitMix64(seed: 10)
        for i in 0..<64 { try device.write(DeviceTestPage.pointers.bytes(using: &rng), at: UInt64(i * pageSize)) }
        let peak = device.memoryStatistics.memUsedMax
        if queuePages == 0 {
            #expect(peak == device.memoryStatistics.memUsedTotal)
        } else {
            #expect(peak > device.memoryStatistics.memUsedTotal)
            #expect(peak <= device.memoryStatistics.memUsedTotal + UInt64(64 * pageSize))
        }
        try device.discard(offset: 0, length: 4 << 20)
        #expect(device.memoryStatistics.memUsedMax == peak)
        device.resetMemoryPeak()
        #expect(device.memoryStatistics.memUsedMax == device.memoryStatistics.memUsedTotal)
    }
}
