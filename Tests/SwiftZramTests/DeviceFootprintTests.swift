#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import SwiftZram

/// What a device's page table costs, from its own exact accounting (every
/// directory block and chunk it allocates), not from the process's RSS.
@Suite struct DeviceFootprintTests {
    static let sizes: [UInt64] = [1 << 30, 64 << 30, 1 << 50, ZramDevice.maximumDiskSize]

    @Test func anEmptyDeviceCostsTheSameAtEverySize() throws {
        for size in Self.sizes {
            let device = try ZramDevice.make(.lz4, diskSize: size)
            #expect(device.tableMemoryUsed == PageTable.blockBytes, "empty device of \(size) bytes")
            // Whole-device scans skip what was never allocated.
            device.markAllIdle()
            #expect(device.idlePages == 0)
            #expect(device.compact() == 0)
            #expect(device.tableMemoryUsed == PageTable.blockBytes, "scans of \(size) bytes allocated nothing")
        }
    }

    @Test(arguments: sizes)
    func writesAllocateOnlyThePathToTheirChunk(size: UInt64) throws {
        let device = try ZramDevice.make(.lz4, diskSize: size)
        let empty = device.tableMemoryUsed
        let last = size - UInt64(pageSize)
        try device.write([1], at: last)
        // One chunk of 1024 slots and the two directory blocks above it.
        let onePath = empty + PageTable.chunkBytes + 2 * PageTable.blockBytes
        #expect(device.tableMemoryUsed == onePath)
        // The neighbouring chunk shares those blocks.
        try device.write([2], at: last - UInt64(PageTable.pagesPerChunk * pageSize))
        #expect(device.tableMemoryUsed == onePath + PageTable.chunkBytes)
        #expect(try device.read(count: 1, at: last) == [1])
        device.markAllIdle()
        #expect(device.idlePages == 2)
        #expect(MemoryLayout<PageSlot>.stride == 16)
    }

    /// zram answers a disksize its table cannot be allocated for with ENOMEM; so do we,
    /// before allocating anything, and the device stays usable.
    @Test(arguments: ["64P", "33P", "0x7fffffffffffffff", "18446744073709551615"])
    func disksizeBeyondTheTableIsOutOfMemory(text: String) throws {
        let device = ZramDevice(name: "zram-huge", streams: 1)
        #expect(throws: ZramError.self) { try device.writeAttribute("disksize", text) }
        do {
            try device.writeAttribute("disksize", text)
        } catch {
            #expect(error.kind == .outOfMemory)
            #expect(error.errno == ENOMEM)
        }
        #expect(!device.isInitialized)
        try device.writeAttribute("disksize", "1P")
        #expect(device.diskSize == 1 << 50)
        #expect(device.tableMemoryUsed == PageTable.blockBytes)
    }

    @Test func theLargestDisksizeIsAccepted() throws {
        let device = ZramDevice(name: "zram-largest", streams: 1)
        try device.writeAttribute("disksize", "32P")
        #expect(device.diskSize == ZramDevice.maximumDiskSize)
        #expect(throws: ZramError.self) { try device.write([1], at: ZramDevice.maximumDiskSize) }
    }

    @Test func sizesThatDoNotParseAreInvalid() {
        let device = ZramDevice(name: "zram-junk", streams: 1)
        #expect(performing: { try device.writeAttribute("disksize", "16E") },
                throws: { ($0 as? ZramError)?.kind == .invalidArgument })
        #expect(performing: { try device.writeAttribute("disksize", "18446744073709551616") },
                throws: { ($0 as? ZramError)?.kind == .invalidArgument })
    }
}
