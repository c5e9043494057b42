#if canImport(Glibc)
import Glibc
#endif
import Foundation
import NBDBacking
import SwiftZram
import Testing

/// zram's writeback with an NBD export (nbdkit memory) as `backing_dev`: the device's
/// pages leave RAM, read back byte for byte, and overwrites free their blocks.
@Suite(NBDKitServer.trait) struct NBDWritebackTests {
    static let pageCount = 256

    /// Half noise (huge pages), half text (compressible), every 16th page zero (same-filled, stays in RAM).
    static func model(seed: UInt64) -> [[UInt8]] {
        var state = seed
        return (0..<pageCount).map { index in
            if index % 16 == 5 { return [UInt8](repeating: 0, count: 4096) }
            if index % 2 == 0 {
                return (0..<4096).map { _ in
                    state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                    return UInt8(truncatingIfNeeded: state >> 33)
                }
            }
            return Array("page \(index) of the NBD writeback test, seed \(seed). ".utf8.cycled(to: 4096))
        }
    }

    static func write(_ device: ZramDevice, _ page: [UInt8], at index: Int) throws {
        try page.withUnsafeBytes { try device.write($0, at: UInt64(index * 4096)) }
    }

    static func read(_ device: ZramDevice, at index: Int) throws -> [UInt8] {
        var page = [UInt8](repeating: 0xA5, count: 4096)
        try page.withUnsafeMutableBytes { try device.read(into: $0, at: UInt64(index * 4096)) }
        return page
    }

    @Test func writebackToAnNBDExportReadsBackByteForByte() throws {
        let seed: UInt64 = 0x4E42_4400
        let server = try NBDKitServer(size: "8M")
        defer { server.stop() }
        let device = ZramDevice(
            name: "zram-nbd", streams: 2, queuePages: 0,
            backingOpener: { name throws(ZramError) in try NBDBackingStore.open(name) })
        try device.writeAttribute("backing_dev", server.uri)
        try device.setDiskSize(UInt64(Self.pageCount * 4096))
        var model = Self.model(seed: seed)
        for (index, page) in model.enumerated() { try Self.write(device, page, at: index) }
        let moved = UInt64(model.filter { !$0.allSatisfy { $0 == 0 } }.count)

        try device.writeAttribute("idle", "all")
        try device.writeAttribute("writeback", "idle")
        #expect(device.backingStatistics.fields == [moved, 0, moved], "seed \(seed)")
        #expect(device.memoryStatistics.comprDataSize == 0)
        for (index, page) in model.enumerated() {
            #expect(try Self.read(device, at: index) == page, "page \(index), seed \(seed)")
        }
        #expect(device.backingStatistics.fields == [moved, moved, moved])

        // Overwrites bring pages back to RAM and free their blocks on the export.
        for index in 0..<8 where index != 5 {
            model[index] = (0..<4096).map { UInt8(truncatingIfNeeded: $0 ^ (index + 1)) }
            try Self.write(device, model[index], at: index)
        }
        #expect(device.backingStatistics.fields[0] == moved - 7)
        for (index, page) in model.enumerated() {
            #expect(try Self.read(device, at: index) == page, "page \(index) after overwrites, seed \(seed)")
        }

        // The export gone: reads of written-back pages are EIO and count as failed reads.
        server.kill()
        #expect(throws: ZramError.self) { _ = try Self.read(device, at: 9) }
        #expect(device.ioStatistics.failedReads >= 1)
        #expect(try Self.read(device, at: 0) == model[0], "pages in RAM still read")
        try device.writeAttribute("reset", "1")
    }
}

extension Sequence {
    /// The sequence repeated until it has `count` elements.
    fileprivate func cycled(to count: Int) -> [Element] {
        let once = Array(self)
        return (0..<count).map { once[$0 % once.count] }
    }
}
