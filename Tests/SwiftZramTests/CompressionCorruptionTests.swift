import SwiftZram
import Testing

@Suite("Compression on corrupt input")
struct CompressionCorruptionTests {
    @Test(arguments: CompressionAlgorithm.allCases, [TestPage.text, .structArray, .pointers, .random])
    func truncatedDataFails(_ algorithm: CompressionAlgorithm, kind: TestPage) throws {
        let pool = try CompressorPool(parameters: CompressionParameters(algorithm: algorithm), streams: 1)
        let compressed = pool.compressed(kind.bytes())
        for keep in [0, 1, compressed.count / 4, compressed.count / 2, compressed.count - 1] {
            #expect(pool.decompressed(Array(compressed.prefix(keep))) == nil, "kept \(keep) of \(compressed.count)")
        }
    }

    /// Flipped bits may still decode to some page (no codec here carries a checksum),
    /// but must never crash or write past the destination.
    @Test(arguments: CompressionAlgorithm.allCases, [TestPage.text, .pointers])
    func bitFlipsDoNotCrash(_ algorithm: CompressionAlgorithm, kind: TestPage) throws {
        let pool = try CompressorPool(parameters: CompressionParameters(algorithm: algorithm), streams: 1)
        let page = kind.bytes()
        let compressed = pool.compressed(page)
        var rng = SplitMix64(seed: 42)
        var failures = 0
        for _ in 0..<500 {
            var damaged = compressed
            for _ in 0...(rng.next() % 3) {
                let bit = Int(rng.next() % UInt64(damaged.count * 8))
                damaged[bit / 8] ^= UInt8(1) << (bit % 8)
            }
            // A guard page after the destination shows any overrun.
            var destination = [UInt8](repeating: 0x5A, count: 2 * TestPage.size)
            let ok = damaged.withUnsafeBytes { source in
                destination.withUnsafeMutableBytes { buffer in
                    pool.withStream {
                        $0.decompress(source, into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<TestPage.size]))
                    }
                }
            }
            #expect(destination[TestPage.size...].allSatisfy { $0 == 0x5A })
            if !ok { failures += 1 }
        }
        // Most damage is detected (as a decode error or a wrong length).
        #expect(failures > 0)
    }

    @Test(arguments: CompressionAlgorithm.allCases)
    func garbageDoesNotCrash(_ algorithm: CompressionAlgorithm) throws {
        let pool = try CompressorPool(parameters: CompressionParameters(algorithm: algorithm), streams: 1)
        for seed in UInt64(1)...20 {
            var garbage = TestPage.random.bytes(seed: seed)
            garbage.removeLast(Int(seed * 97))
            _ = pool.decompressed(garbage)
        }
        #expect(pool.decompressed([]) == nil)
    }
}
