import Testing
@testable import SwiftZram

/// Discards over table chunks that were never allocated, next to chunks that were.
@Suite struct DeviceSparseDiscardTests {
    @Test(arguments: [false, true])
    func discardBeforeTheFirstAllocatedChunkKeepsLaterPages(writeZeroes: Bool) throws {
        let device = try ZramDevice.make(diskSize: 64 << 20)
        let farPage = 3 * PageTable.pagesPerChunk + 7
        var rng = SplitMix64(seed: 0x5EED_D15C)
        let page = DeviceTestPage.text.bytes(using: &rng)
        try device.write(page, at: UInt64(farPage * pageSize))
        // Only chunk 3 exists: a range inside chunk 0 must not reach it.
        if writeZeroes {
            try device.writeZeroes(offset: 0, length: 100 * UInt64(pageSize))
        } else {
            try device.discard(offset: 0, length: 100 * UInt64(pageSize))
        }
        #expect(try device.read(count: pageSize, at: UInt64(farPage * pageSize)) == page)
        #expect(device.ioStatistics.notifyFree == 100)
        // A range that ends inside the allocated chunk frees only its own pages.
        try device.discard(offset: 0, length: UInt64(farPage * pageSize))
        #expect(try device.read(count: pageSize, at: UInt64(farPage * pageSize)) == page)
        try device.discard(offset: UInt64(farPage * pageSize), length: UInt64(pageSize))
        #expect(try device.read(count: pageSize, at: UInt64(farPage * pageSize)) == [UInt8](repeating: 0, count: pageSize))
    }
}
