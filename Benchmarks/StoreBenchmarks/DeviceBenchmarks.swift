import Benchmark
import SwiftZram

/// Round-robin state for a device benchmark; only its own benchmark thread touches it.
final class DeviceBench {
    let device: ZramDevice
    let corpus = AnonCorpus.shared
    var cursor = 0
    /// Corpus page indices the load benchmark reads: the same spread sample the decompress benchmark uses.
    var sample: [Int] = []
    let destination = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)

    init(_ algorithm: CompressionAlgorithm, level: Int) throws {
        // Inline stores: the compression queue would move compression to another thread and
        // hide what a store costs.
        device = ZramDevice(name: "bench", streams: 1, queuePages: 0)
        try device.setAlgorithm(algorithm)
        try device.setAlgorithmParameters(level: level, dictionary: nil)
        try device.setDiskSize(UInt64(corpus.pageCount * AnonCorpus.pageSize))
    }

    /// Stores every corpus page at its own offset, as a swap-out of the whole heap would.
    func fill() throws {
        for index in 0..<corpus.pageCount {
            try device.write(corpus.page(index), at: UInt64(index * AnonCorpus.pageSize))
        }
        let pages = corpus.compressiblePages
        let stride = max(1, pages.count / decompressSampleSize)
        sample = Swift.stride(from: 0, to: pages.count, by: stride).map { pages[$0] }
    }

    /// The next non-same-filled page index, round-robin (the compress benchmark's order).
    @inline(__always)
    func nextStoreIndex() -> Int {
        let pages = corpus.compressiblePages
        let index = pages[cursor]
        cursor = cursor + 1 == pages.count ? 0 : cursor + 1
        return index
    }

    @inline(__always)
    func nextLoadIndex() -> Int {
        let index = sample[cursor]
        cursor = cursor + 1 == sample.count ? 0 : cursor + 1
        return index
    }
}

/// Store one page and load one page through a device, per algorithm: the codec plus
/// the same-filled check, page table, allocator and counters. Compare with the codec benchmarks.
func deviceBenchmarks() {
    let cases: [(CompressionAlgorithm, Int)] = [(.lz4, 1), (.lzo, 1), (.zstd, 1)]
    for (algorithm, level) in cases {
        let name = "\(algorithm)-\(level)"

        // Steady state: after the first pass every store replaces the page's previous object.
        Benchmark("store page \(name)") { (benchmark: Benchmark, bench: DeviceBench) in
            for _ in benchmark.scaledIterations {
                let index = bench.nextStoreIndex()
                try bench.device.write(bench.corpus.page(index), at: UInt64(index * AnonCorpus.pageSize))
            }
        } setup: {
            let bench = try DeviceBench(algorithm, level: level)
            try bench.fill()
            return bench
        }

        Benchmark("load page \(name)") { (benchmark: Benchmark, bench: DeviceBench) in
            for _ in benchmark.scaledIterations {
                let index = bench.nextLoadIndex()
                try bench.device.read(into: bench.destination, at: UInt64(index * AnonCorpus.pageSize))
            }
        } setup: {
            let bench = try DeviceBench(algorithm, level: level)
            try bench.fill()
            bench.cursor = 0
            return bench
        }
    }
}
