import SwiftZram


/// Kinds of page that real anonymous memory is made of.
enum TestPage: String, CaseIterable, Sendable, CustomStringConvertible {
    case text, structArray, pointers, random, sameFilled, zero

    var description: String { rawValue }
    static let size = 4096

    /// Random pages cannot shrink; every other kind must.
    var isCompressible: Bool { self != .random }

    func bytes(seed: UInt64 = 1) -> [UInt8] {
        var rng = SplitMix64(seed: seed &* 0x1000 &+ UInt64(Self.allCases.firstIndex(of: self)!))
        var page = [UInt8]()
        page.reserveCapacity(Self.size)
        switch self {
        case .text:
            let words = [
                "the", "page", "is", "compressed", "by", "zram", "before", "it", "reaches", "memory",
                "swap", "device", "kernel", "allocator", "stream", "of", "and", "a", "with", "python",
            ]
            while page.count < Self.size {
                page += Array(words[Int(rng.next() % UInt64(words.count))].utf8)
                page.append(rng.next() % 11 == 0 ? UInt8(ascii: "\n") : UInt8(ascii: " "))
            }
        case .structArray:
            // struct { UInt32 id; UInt16 kind; UInt16 flags; Float64 value; UInt64 zero }
            var id: UInt32 = 1000
            while page.count < Self.size {
                withUnsafeBytes(of: id.littleEndian) { page += $0 }
                withUnsafeBytes(of: UInt16(rng.next() % 4).littleEndian) { page += $0 }
                withUnsafeBytes(of: UInt16(0x0101).littleEndian) { page += $0 }
                withUnsafeBytes(of: (Double(rng.next() % 1000) / 8).bitPattern.littleEndian) { page += $0 }
                page += [UInt8](repeating: 0, count: 8)
                id += 1
            }
        case .pointers:
            // Heap pointers into a few nearby regions, with small integers between them.
            let bases: [UInt64] = [0x7F3A_1C20_0000, 0x5612_8A40_0000, 0x7F3A_1D00_0000]
            while page.count < Self.size {
                let word: UInt64 =
                    rng.next() % 4 == 0
                    ? rng.next() % 300 : bases[Int(rng.next() % 3)] + (rng.next() % 0x10_0000) & ~0xF
                withUnsafeBytes(of: word.littleEndian) { page += $0 }
            }
        case .random:
            while page.count < Self.size { withUnsafeBytes(of: rng.next()) { page += $0 } }
        case .sameFilled:
            while page.count < Self.size {
                withUnsafeBytes(of: UInt64(0xDEAD_BEEF_CAFE_BABE).littleEndian) { page += $0 }
            }
        case .zero:
            page = [UInt8](repeating: 0, count: Self.size)
        }
        return Array(page.prefix(Self.size))
    }
}

/// Algorithm and level pairs worth testing: each algorithm's extremes, default and a middle.
let algorithmLevels: [(CompressionAlgorithm, Int)] = [
    (.lz4, 1), (.lz4, 8), (.lz4, 65537),
    (.lz4hc, 1), (.lz4hc, 9), (.lz4hc, 12),
    (.lzo, 1),
    (.zstd, 1), (.zstd, 3), (.zstd, 19),
]

/// Whether a level is meant to shrink data; lz4 at huge accelerations barely tries.
func levelCompresses(_ algorithm: CompressionAlgorithm, _ level: Int) -> Bool {
    algorithm != .lz4 || level <= 64
}

/// The size a compressible test page must come under at `level`: three quarters of
/// a page, or just under a page for lz4 accelerations above 4, which trade ratio for
/// speed (LZ4_compress_fast at acceleration 8 leaves the pointers page at 77 %).
func wellCompressedLimit(_ algorithm: CompressionAlgorithm, _ level: Int) -> Int {
    algorithm == .lz4 && level > 4 ? 4000 : 3072
}

extension CompressorPool {
    /// Compresses `page` and returns a copy of the compressed bytes.
    func compressed(_ page: [UInt8]) -> [UInt8] {
        withStream { stream in
            page.withUnsafeBytes { Array(stream.compress($0)) }
        }
    }

    /// Decompresses into a fresh page, or `nil` if decompression reports failure.
    func decompressed(_ data: [UInt8], count: Int = TestPage.size) -> [UInt8]? {
        withStream { stream in
            var page = [UInt8](repeating: 0xAA, count: count)
            let ok = data.withUnsafeBytes { source in
                page.withUnsafeMutableBytes { stream.decompress(source, into: $0) }
            }
            return ok ? page : nil
        }
    }
}
