import SwiftZram
import Testing

@Suite("Compression parameters")
struct CompressionParameterTests {
    @Test func defaults() throws {
        let parameters = try CompressionParameters()
        #expect(parameters.algorithm == .lz4)
        #expect(parameters.level == 1)
        #expect(parameters.dictionary == nil)
        #expect(try CompressionParameters(algorithm: .zstd).level == 1)
        #expect(try CompressionParameters(algorithm: .lz4hc).level == CompressionAlgorithm.lz4hc.defaultLevel)
    }

    @Test(arguments: CompressionAlgorithm.allCases)
    func levelsOutOfRangeAreRejected(_ algorithm: CompressionAlgorithm) {
        for level in [algorithm.levels.lowerBound - 1, algorithm.levels.upperBound + 1, -5] {
            let error = #expect(throws: ZramError.self) {
                try CompressionParameters(algorithm: algorithm, level: level)
            }
            #expect(error?.kind == .invalidArgument)
        }
    }

    @Test(arguments: CompressionAlgorithm.allCases)
    func dictionarySupport(_ algorithm: CompressionAlgorithm) throws {
        let dictionary = TestPage.text.bytes()
        if algorithm.supportsDictionary {
            let parameters = try CompressionParameters(algorithm: algorithm, dictionary: dictionary)
            #expect(parameters.dictionary == dictionary)
        } else {
            let error = #expect(throws: ZramError.self) {
                try CompressionParameters(algorithm: algorithm, dictionary: dictionary)
            }
            #expect(error?.kind == .invalidArgument)
            #expect(error?.errno == 22)
        }
    }

    @Test func emptyDictionaryIsRejected() {
        let error = #expect(throws: ZramError.self) {
            try CompressionParameters(algorithm: .zstd, dictionary: [])
        }
        #expect(error?.kind == .invalidArgument)
    }

    @Test(arguments: [0, 65, -1, 1000])
    func badStreamCountsAreRejected(_ streams: Int) throws {
        let parameters = try CompressionParameters()
        let error = #expect(throws: ZramError.self) {
            try CompressorPool(parameters: parameters, streams: streams)
        }
        #expect(error?.kind == .invalidArgument)
    }

    @Test(arguments: [1, 2, 64])
    func goodStreamCounts(_ streams: Int) throws {
        let pool = try CompressorPool(parameters: CompressionParameters(algorithm: .zstd), streams: streams)
        #expect(pool.streamCount == streams)
        #expect(pool.parameters.algorithm == .zstd)
    }

    @Test func poolRevalidatesMutatedParameters() throws {
        var parameters = try CompressionParameters(algorithm: .lz4hc)
        parameters.level = 13
        #expect(throws: ZramError.self) { try CompressorPool(parameters: parameters, streams: 1) }
        parameters.level = 9
        parameters.algorithm = .lzo
        parameters.level = 1
        parameters.dictionary = [1, 2, 3]
        #expect(throws: ZramError.self) { try CompressorPool(parameters: parameters, streams: 1) }
    }

    @Test func corruptZstdDictionaryIsRejected() throws {
        // A zstd dictionary's magic number, followed by entropy tables that are garbage.
        var bytes: [UInt8] = [0x37, 0xA4, 0x30, 0xEC, 1, 0, 0, 0]
        bytes += TestPage.random.bytes().prefix(200)
        let parameters = try CompressionParameters(algorithm: .zstd, dictionary: bytes)
        let error = #expect(throws: ZramError.self) {
            try CompressorPool(parameters: parameters, streams: 1)
        }
        #expect(error?.kind == .invalidArgument)
    }
}
