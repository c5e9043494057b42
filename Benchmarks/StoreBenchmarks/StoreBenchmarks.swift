import Benchmark

/// Per-page benchmarks on real anonymous memory (`ZRAM_CORPUS`, default /tmp/znbd-anon.bin).
/// One iteration is 1000 pages. By default the table shows per-page values (integer-divided,
/// marked `*`); with `--scale` it shows raw per-1000-page values, so microseconds there are
/// nanoseconds per page, and mallocCountTotal is exact. It must stay 0: the per-page paths
/// allocate nothing.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        timeUnits: .microseconds,
        warmupIterations: 3,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 1000)

    // Codec benchmarks: compress / decompress one page per algorithm.
    codecBenchmarks()

    // Store/load benchmarks: the same pages through a whole device.
    deviceBenchmarks()

    // A file backing store's page writes and reads (writeback's I/O).
    backingStoreBenchmarks()
}
