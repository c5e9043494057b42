import Testing
@testable import SwiftZram

/// Stored pages damaged in the allocator: a read of the device reports EIO
/// (and counts it in failed_reads) rather than crashing or returning garbage.
@Suite struct DeviceCorruptionTests {
    enum Damage: CaseIterable {
        /// The object loses its tail, as a short or torn store would leave it.
        case truncated
        /// The object's bytes are replaced by noise.
        case garbage
    }

    /// Applies `damage` to the object stored for page 0 of `device`.
    static func damage(_ device: ZramDevice, _ damage: Damage, seed: UInt64) throws {
        try device.withInitializedStore { store throws(ZramError) in
            store.drain()
            guard let slot = store.table.existingSlot(0) else { throw .invalid("page 0 was never written") }
            let state = slot.lock()
            defer {
                let size = damage == .truncated ? max(1, state.objectSize / 2) : state.objectSize
                slot.unlock(setting: .object(size: size, huge: state.isHuge))
            }
            guard state.hasObject, !state.isHuge else { throw .invalid("page 0 is not a compressed object") }
            if damage == .garbage {
                store.pool.withObject(ObjectHandle(rawValue: slot.pointee.payload), size: state.objectSize) { object in
                    var rng = SplitMix64(seed: seed)
                    let bytes = UnsafeMutableRawBufferPointer(mutating: object)
                    for index in bytes.indices { bytes[index] = UInt8(truncatingIfNeeded: rng.next()) }
                }
            }
        }
    }

    @Test(arguments: CompressionAlgorithm.allCases, Damage.allCases)
    func aDamagedPageReadsAsAnError(algorithm: CompressionAlgorithm, damage: Damage) throws {
        let seed: UInt64 = 0xBAD
        let device = try ZramDevice.make(algorithm, diskSize: 1 << 20)
        var rng = SplitMix64(seed: seed)
        let page = DeviceTestPage.text.bytes(using: &rng)
        try device.write(page, at: 0)
        try device.write(page, at: UInt64(pageSize))
        try Self.damage(device, damage, seed: seed)

        #expect(
            "whole page, seed \(seed)", performing: { _ = try device.read(count: pageSize, at: 0) },
            throws: { ($0 as? ZramError)?.kind == .ioError })
        #expect(
            "part of the page, seed \(seed)", performing: { _ = try device.read(count: 100, at: 50) },
            throws: { ($0 as? ZramError)?.kind == .ioError })
        // A partial write must read the old page first: it fails too, and changes nothing.
        #expect(
            "read-modify-write, seed \(seed)", performing: { try device.write([1, 2, 3], at: 10) },
            throws: { ($0 as? ZramError)?.kind == .ioError })
        #expect(device.ioStatistics.failedReads == 3)
        #expect(device.ioStatistics.failedWrites == 1)
        // Other pages are untouched, and writing the page whole repairs it.
        #expect(try device.read(count: pageSize, at: UInt64(pageSize)) == page)
        try device.write(page, at: 0)
        #expect(try device.read(count: pageSize, at: 0) == page)
    }
}
