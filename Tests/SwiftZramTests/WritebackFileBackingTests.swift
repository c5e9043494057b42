#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import SwiftZram

/// The writeback scenarios on real backing stores: a sparse regular file (the default
/// opener creates it) and a loop block device.
@Suite struct WritebackFileBackingTests {
    /// Writes `pages`, marks everything idle and writes it back; checks bd_stat and the data.
    static func writeBackEverything(_ device: ZramDevice, _ pages: [[UInt8]], seed: UInt64) throws -> UInt64 {
        let model = try WritebackTests.fill(device, pages)
        let before = device.memoryStatistics
        let moved = before.origDataSize / 4096 - before.samePages
        try device.writeAttribute("idle", "all")
        try device.writeAttribute("writeback", "idle")
        #expect(device.bd == [moved, 0, moved], "seed \(seed)")
        #expect(device.memoryStatistics.origDataSize == before.origDataSize)
        #expect(device.memoryStatistics.comprDataSize == 0)
        try WritebackTests.verify(device, model, seed: seed, "from the backing store")
        #expect(device.bd == [moved, moved, moved])
        return moved
    }

    static func allocatedBytes(_ path: String) -> Int {
        var status = stat()
        guard stat(path, &status) == 0 else { return -1 }
        return Int(status.st_blocks) * 512
    }

    @Test(arguments: [CompressionAlgorithm.lz4, .zstd])
    func aSparseFileHoldsWrittenBackPagesAndOverwritesPunchHoles(algorithm: CompressionAlgorithm) throws {
        let seed: UInt64 = 0xF11E
        let scratch = try BackingScratch()
        defer { scratch.remove() }
        let path = scratch.file("zram-backing")
        let device = ZramDevice(name: "zram-file", streams: 2)
        try device.setAlgorithm(algorithm)
        try device.writeAttribute("backing_dev", path)
        try device.writeAttribute("disksize", "8M")
        #expect(try device.readAttribute("backing_dev") == path + "\n")
        #expect(fileStatus(path)?.st_size == 8 << 20, "the file is sized to disksize")
        #expect(Self.allocatedBytes(path) == 0, "and sparse")

        let pages = WritebackTests.fioPages(256, seed: seed)
        let moved = try Self.writeBackEverything(device, pages, seed: seed)
        #expect(Self.allocatedBytes(path) >= Int(moved) * 4096, "one block per written-back page")

        // Overwriting half of them frees their blocks and punches holes in the file.
        var rng = SplitMix64(seed: seed)
        var model = pages
        for index in 0..<128 {
            model[index] = DeviceTestPage.text.bytes(using: &rng)
            try device.write(model[index], at: UInt64(index * pageSize))
        }
        let stillBack = UInt64(128 - model[128...].filter { $0.allSatisfy { $0 == 0 } }.count)
        #expect(device.bd[0] == stillBack)
        #expect(Self.allocatedBytes(path) <= Int(stillBack) * 4096 + 64 << 10, "freed blocks are holes again")
        try WritebackTests.verify(device, model, seed: seed, "after the overwrites")

        try device.writeAttribute("reset", "1")
        #expect(try device.readAttribute("backing_dev") == "none\n")
        // The file is released: it can back a device again.
        try device.writeAttribute("backing_dev", path)
        try device.writeAttribute("disksize", "8M")
        #expect(try device.read(count: 256 * pageSize, at: 0).allSatisfy { $0 == 0 })
    }

    @Test func realAnonymousMemoryThroughAFile() throws {
        let seed: UInt64 = 4096
        guard let corpus = WritebackData.corpusPages(1024, seed: seed) else { return }
        let scratch = try BackingScratch()
        defer { scratch.remove() }
        let device = ZramDevice(name: "zram-file", streams: 2)
        try device.writeAttribute("backing_dev", scratch.file("backing"))
        try device.writeAttribute("disksize", "8M")
        _ = try Self.writeBackEverything(device, corpus, seed: seed)
    }
}

@Suite(LoopFacility.trait) struct WritebackLoopDeviceTests {
    @Test func aLoopDeviceBacksWritebackAndFillsUpWithENOSPC() throws {
        let seed: UInt64 = 0x100B
        let scratch = try BackingScratch()
        defer { scratch.remove() }
        let file = scratch.file("loop-file")
        #expect(FileManager.default.createFile(atPath: file, contents: nil))
        #expect(truncate(file, off_t(64 * 4096)) == 0)
        let loop = try LoopDevice(file: file)
        defer { loop.detach() }

        let device = ZramDevice(name: "zram-loop", streams: 2)
        try device.writeAttribute("backing_dev", loop.path)
        try device.writeAttribute("disksize", "4M")
        var rng = SplitMix64(seed: seed)
        var model = try WritebackTests.fill(device, (0..<48).map { _ in WritebackData.fioPage(using: &rng) })
        try device.writeAttribute("writeback", "page_indexes=0-47")
        #expect(device.bd == [48, 0, 48])
        try WritebackTests.verify(device, model, seed: seed, "from the loop device")

        // 64 blocks in all: the next 16 fit, the rest is ENOSPC.
        model += try (48..<100).map { index in
            let page = DeviceTestPage.noise.bytes(using: &rng)
            try device.write(page, at: UInt64(index * pageSize))
            return page
        }
        try device.writeAttribute("idle", "all")
        #expect(throwsKind(.noSpace) { try device.writeAttribute("writeback", "idle") })
        #expect(device.bd[0] == 64)
        try WritebackTests.verify(device, model, seed: seed, "after ENOSPC")
        try device.discard(offset: 0, length: UInt64(48 * pageSize))
        #expect(device.bd[0] == 16, "discards free the device's blocks")
        try device.writeAttribute("reset", "1")
        // The claim is released with the reset: the device can be opened again.
        let store = try FileBackingStore.open(loop.path)
        store.close()
    }
}
