import Benchmark
import Foundation
import SwiftZram

/// What zram stores raw rather than compressed (huge_class_size with 8-page zspages).
let hugeThreshold = 3625

/// Pages decompressed round-robin: a sample spread over the whole corpus.
let decompressSampleSize = 16384

/// Round-robin state for one benchmark; only its own benchmark thread touches it.
final class CodecBench {
    let pool: CompressorPool
    let corpus = AnonCorpus.shared
    var cursor = 0
    /// Compressed sample pages, back to back, for the decompression benchmark.
    var compressed: UnsafeMutableRawBufferPointer = .init(start: nil, count: 0)
    var offsets: [Int] = []
    let destination = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)

    init(_ algorithm: CompressionAlgorithm, level: Int) throws {
        pool = try CompressorPool(
            parameters: CompressionParameters(algorithm: algorithm, level: level), streams: 1)
    }

    /// The next non-same-filled corpus page, round-robin.
    @inline(__always)
    func nextPage() -> UnsafeRawBufferPointer {
        let pages = corpus.compressiblePages
        let page = corpus.page(pages[cursor])
        cursor = cursor + 1 == pages.count ? 0 : cursor + 1
        return page
    }

    /// zram's compression ratio on the whole corpus: original over compressed bytes,
    /// same-filled pages excluded, pages of `hugeThreshold` bytes or more counted as 4096.
    func corpusRatio() -> (ratio: Double, hugePages: Int) {
        var compressedTotal = 0
        var huge = 0
        pool.withStream { stream in
            for index in corpus.compressiblePages {
                let size = stream.compress(corpus.page(index)).count
                if size >= hugeThreshold { huge += 1 }
                compressedTotal += size >= hugeThreshold ? 4096 : size
            }
        }
        return (Double(corpus.compressiblePages.count * 4096) / Double(compressedTotal), huge)
    }

    /// Compresses a sample of pages that zram would keep compressed (not huge).
    func prepareDecompression() {
        var sizes = [Int]()
        var data = [UInt8]()
        let pages = corpus.compressiblePages
        let stride = max(1, pages.count / decompressSampleSize)
        pool.withStream { stream in
            for index in Swift.stride(from: 0, to: pages.count, by: stride) {
                let output = stream.compress(corpus.page(pages[index]))
                if output.count < hugeThreshold {
                    sizes.append(output.count)
                    data += output
                }
            }
        }
        compressed = .allocate(byteCount: data.count, alignment: 64)
        data.withUnsafeBytes { compressed.copyMemory(from: $0) }
        offsets = [0]
        for size in sizes { offsets.append(offsets.last! + size) }
        cursor = 0
    }

    /// The next compressed sample page, round-robin.
    @inline(__always)
    func nextCompressed() -> UnsafeRawBufferPointer {
        let start = offsets[cursor]
        let end = offsets[cursor + 1]
        cursor = cursor + 2 == offsets.count ? 0 : cursor + 1
        return UnsafeRawBufferPointer(rebasing: compressed[start..<end])
    }
}

private func log(_ message: String) {
    FileHandle.standardError.write((message + "\n").data(using: .utf8)!)
}

/// Compress one page and decompress one page, per algorithm, on real anonymous memory.
func codecBenchmarks() {
    let cases: [(CompressionAlgorithm, Int)] = [
        (.lz4, 1), (.lz4hc, 9), (.lzo, 1), (.zstd, 1), (.zstd, 3),
    ]
    for (algorithm, level) in cases {
        let name = "\(algorithm)-\(level)"

        Benchmark("compress page \(name)") { (benchmark: Benchmark, bench: CodecBench) in
            for _ in benchmark.scaledIterations {
                let size = bench.pool.withStream { $0.compress(bench.nextPage()).count }
                blackHole(size)
            }
        } setup: {
            let bench = try CodecBench(algorithm, level: level)
            let (ratio, huge) = bench.corpusRatio()
            log(
                "ratio \(name): \(String(format: "%.2f", ratio)) over \(bench.corpus.compressiblePages.count) pages"
                    + " (\(huge) huge, >= \(hugeThreshold) bytes)")
            return bench
        }

        Benchmark("decompress page \(name)") { (benchmark: Benchmark, bench: CodecBench) in
            for _ in benchmark.scaledIterations {
                let ok = bench.pool.withStream { $0.decompress(bench.nextCompressed(), into: bench.destination) }
                precondition(ok, "\(name) failed to decompress its own output")
            }
        } setup: {
            let bench = try CodecBench(algorithm, level: level)
            bench.prepareDecompression()
            return bench
        }
    }
}

