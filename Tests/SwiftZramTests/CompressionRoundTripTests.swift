import SwiftZram
import Testing

@Suite("Compression round trips")
struct CompressionRoundTripTests {
    @Test(arguments: algorithmLevels, TestPage.allCases)
    func roundTrip(_ algorithmLevel: (CompressionAlgorithm, Int), kind: TestPage) throws {
        let (algorithm, level) = algorithmLevel
        let pool = try CompressorPool(
            parameters: CompressionParameters(algorithm: algorithm, level: level), streams: 2)
        for seed in UInt64(1)...3 {
            let page = kind.bytes(seed: seed)
            let compressed = pool.compressed(page)
            if kind.isCompressible, levelCompresses(algorithm, level) {
                let limit = wellCompressedLimit(algorithm, level)
                #expect(compressed.count < limit, "\(kind) should compress below \(limit), got \(compressed.count) bytes")
            } else if kind == .random {
                // The device stores such pages raw (zram's huge pages).
                #expect(compressed.count >= 4000, "random data shrank to \(compressed.count) bytes")
            }
            #expect(pool.decompressed(compressed) == page)
        }
    }

    @Test(arguments: CompressionAlgorithm.allCases)
    func workPageIsUsableAsInput(_ algorithm: CompressionAlgorithm) throws {
        let pool = try CompressorPool(parameters: CompressionParameters(algorithm: algorithm), streams: 1)
        let page = TestPage.text.bytes()
        let compressed: [UInt8] = pool.withStream { stream in
            let work = stream.workPage
            #expect(work.count == 4096)
            page.withUnsafeBytes { work.copyMemory(from: $0) }
            return Array(stream.compress(UnsafeRawBufferPointer(work)))
        }
        #expect(pool.decompressed(compressed) == page)
    }

    @Test(arguments: CompressionAlgorithm.allCases)
    func otherStreamsOfThePoolDecompress(_ algorithm: CompressionAlgorithm) throws {
        let pool = try CompressorPool(parameters: CompressionParameters(algorithm: algorithm), streams: 3)
        let page = TestPage.pointers.bytes()
        let compressed = pool.compressed(page)
        // Hold two streams so the third, fresh one does the decompression.
        pool.withStream { first in
            pool.withStream { second in
                #expect(pool.decompressed(compressed) == page)
                _ = (first, second)
            }
        }
    }

    @Test(arguments: CompressionAlgorithm.allCases)
    func wrongDestinationSizeFails(_ algorithm: CompressionAlgorithm) throws {
        let pool = try CompressorPool(parameters: CompressionParameters(algorithm: algorithm), streams: 1)
        let compressed = pool.compressed(TestPage.text.bytes())
        #expect(pool.decompressed(compressed, count: 8192) == nil)
        #expect(pool.decompressed(compressed, count: 2048) == nil)
    }
}
