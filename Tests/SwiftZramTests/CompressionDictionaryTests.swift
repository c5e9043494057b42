import SwiftZram
import Testing

@Suite("Compression dictionaries")
struct CompressionDictionaryTests {
    /// JSON-ish records with a fixed vocabulary, like a heap full of one program's objects.
    static func records(seed: UInt64, count: Int) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        let cities = ["Lisbon", "Oslo", "Kyoto", "Lima", "Nairobi", "Quito", "Perth", "Turku"]
        var text = ""
        while text.utf8.count < count {
            let id = rng.next() % 1_000_000
            let city = cities[Int(rng.next() % UInt64(cities.count))]
            text += "{\"customer_id\": \(id), \"shipping_city\": \"\(city)\", "
            text += "\"status\": \"awaiting_fulfilment\", \"priority\": \(rng.next() % 5), "
            text += "\"created_at\": \"2026-11-\(10 + rng.next() % 20)T\(rng.next() % 24):00:00Z\"}\n"
        }
        return Array(text.utf8.prefix(count))
    }

    static let dictionary = records(seed: 7, count: 32 * 1024)

    @Test(arguments: [CompressionAlgorithm.lz4, .zstd])
    func roundTripWithDictionary(_ algorithm: CompressionAlgorithm) throws {
        let pool = try CompressorPool(
            parameters: CompressionParameters(algorithm: algorithm, dictionary: Self.dictionary), streams: 2)
        for kind in TestPage.allCases {
            let page = kind.bytes()
            #expect(pool.decompressed(pool.compressed(page)) == page, "\(kind)")
        }
        for seed in UInt64(100)..<110 {
            let page = Self.records(seed: seed, count: TestPage.size)
            #expect(pool.decompressed(pool.compressed(page)) == page)
        }
    }

    @Test(arguments: [CompressionAlgorithm.lz4, .zstd])
    func dictionaryImprovesRatioOnSimilarData(_ algorithm: CompressionAlgorithm) throws {
        let plain = try CompressorPool(parameters: CompressionParameters(algorithm: algorithm), streams: 1)
        let withDictionary = try CompressorPool(
            parameters: CompressionParameters(algorithm: algorithm, dictionary: Self.dictionary), streams: 1)
        var plainTotal = 0
        var dictionaryTotal = 0
        for seed in UInt64(200)..<220 {
            let page = Self.records(seed: seed, count: TestPage.size)
            plainTotal += plain.compressed(page).count
            dictionaryTotal += withDictionary.compressed(page).count
        }
        #expect(Double(dictionaryTotal) < 0.85 * Double(plainTotal), "\(dictionaryTotal) vs \(plainTotal)")
    }

    @Test(arguments: [CompressionAlgorithm.lz4, .zstd])
    func largeDictionaryKeepsItsTail(_ algorithm: CompressionAlgorithm) throws {
        // lz4 only uses the last 64 KiB; zstd all of it. Both must round trip.
        let dictionary = TestPage.random.bytes() + Self.records(seed: 9, count: 100 * 1024)
        let pool = try CompressorPool(
            parameters: CompressionParameters(algorithm: algorithm, level: 3, dictionary: dictionary), streams: 1)
        let page = Self.records(seed: 300, count: TestPage.size)
        #expect(pool.decompressed(pool.compressed(page)) == page)
    }

    @Test(arguments: [CompressionAlgorithm.lz4, .zstd])
    func dictionaryDataNeedsTheDictionary(_ algorithm: CompressionAlgorithm) throws {
        let withDictionary = try CompressorPool(
            parameters: CompressionParameters(algorithm: algorithm, dictionary: Self.dictionary), streams: 1)
        let plain = try CompressorPool(parameters: CompressionParameters(algorithm: algorithm), streams: 1)
        let page = Self.records(seed: 400, count: TestPage.size)
        let compressed = withDictionary.compressed(page)
        #expect(plain.decompressed(compressed) != page)
    }
}
