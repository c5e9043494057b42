#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

@testable import SwiftZram

/// All allocator tests. Memory is measured on each pool's own mappings and
/// counters, never as process-wide RSS, so they may run beside anything.
@Suite struct AllocatorTests {}

extension SplitMix64 {
    /// A compressed-page-like size: log-normal with median `median`,
    /// clipped to 1...4096.
    mutating func compressedSize(median: Double = 1200, sigma: Double = 0.6) -> Int {
        let u1 = Double.random(in: Double.leastNonzeroMagnitude..<1, using: &self)
        let u2 = Double.random(in: 0..<1, using: &self)
        let normal = (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
        return min(4096, max(1, Int(median * exp(sigma * normal))))
    }
}

/// A live object the tests remember: its handle, length and pattern seed.
struct StoredObject: Sendable {
    var handle: ObjectHandle
    var length: Int
    var seed: UInt64
}

/// Fills `buffer` with the pattern of `seed` (distinct seeds, distinct bytes).
func fillPattern(_ buffer: UnsafeMutableRawBufferPointer, seed: UInt64) {
    var random = SplitMix64(seed: seed)
    var offset = 0
    while offset < buffer.count {
        var word = random.next()
        let chunk = min(8, buffer.count - offset)
        withUnsafeBytes(of: &word) { bytes in
            buffer.baseAddress!.advanced(by: offset).copyMemory(from: bytes.baseAddress!, byteCount: chunk)
        }
        offset += chunk
    }
}

extension ZsPool {
    /// Stores `length` bytes of `seed`'s pattern.
    func storePattern(length: Int, seed: UInt64) -> StoredObject? {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 16)
        defer { buffer.deallocate() }
        fillPattern(buffer, seed: seed)
        return store(UnsafeRawBufferPointer(buffer)).map { StoredObject(handle: $0, length: length, seed: seed) }
    }

    /// Whether the object still holds exactly its pattern.
    func holdsPattern(_ object: StoredObject) -> Bool {
        let expected = UnsafeMutableRawBufferPointer.allocate(byteCount: object.length, alignment: 16)
        defer { expected.deallocate() }
        fillPattern(expected, seed: object.seed)
        return withObject(object.handle, size: object.length) { actual in
            memcmp(actual.baseAddress!, expected.baseAddress!, object.length) == 0
        }
    }

    /// memoryUsed must equal the pages the classes report.
    var pagesFromStatistics: Int { statistics().reduce(0) { $0 + $1.pagesHeld } }
}
