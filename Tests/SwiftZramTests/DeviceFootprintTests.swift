import Foundation
import Testing
@testable import SwiftZram

@Suite(.serialized) struct DeviceFootprintTests {
    /// Resident bytes of this process (/proc/self/statm).
    static func residentBytes() -> Int {
        let text = (try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8)) ?? "0 0"
        return (Int(text.split(separator: " ")[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    @Test func anEmptySixteenGigabyteDeviceCostsUnderOneThousandth() throws {
        let before = Self.residentBytes()
        let device = try ZramDevice.make(.lz4, diskSize: 16 << 30)
        let after = Self.residentBytes()
        let table = device.tableMemoryUsed
        print("empty 16 GiB device: table \(table) bytes, RSS growth \(after - before) bytes")
        #expect(table <= 64 << 10)
        #expect(after - before < 16 << 20)
        // One written page allocates one chunk of 1024 slots, not the whole table.
        try device.write([1], at: 8 << 30)
        #expect(device.tableMemoryUsed == table + PageTable.pagesPerChunk * MemoryLayout<PageSlot>.stride)
        #expect(MemoryLayout<PageSlot>.stride == 16)
    }
}
