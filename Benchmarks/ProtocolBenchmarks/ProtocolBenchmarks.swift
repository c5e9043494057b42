import Benchmark
import Foundation
import Logging
import NBD
import SwiftZram
import ZnbdKit

/// The NBD request path, end to end over a Unix socket: a client in this process sends
/// prebuilt requests and the server's connection thread parses them, calls the export and
/// replies. The export is flat memory so that only the protocol path is measured.
///
/// mallocCountTotal counts every thread (server included). Static thresholds in
/// `Benchmarks/Thresholds` hold it at 0 in steady state; `scripts/check-allocations.sh` checks them.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        timeUnits: .microseconds,
        warmupIterations: 3,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 1000)

    let cases: [(String, NBDCommand, Int, Int)] = [
        ("write 4 KiB QD1", .write, 4096, 1),
        ("read 4 KiB QD1", .read, 4096, 1),
        ("write 4 KiB QD32", .write, 4096, 32),
        ("read 4 KiB QD32", .read, 4096, 32),
        ("trim 4 KiB QD32", .trim, 4096, 32),
        ("write 1 MiB QD1", .write, 1 << 20, 1),
        ("read 1 MiB QD1", .read, 1 << 20, 1),
    ]
    // The protocol alone (flat memory), then the production path: NBD, then `ZramExport`,
    // then the device with its compression queue and compressor thread.
    let exports = [("", ProtocolServer.memoryExport), ("zram ", ProtocolServer.zramExport)]
    for (prefix, export) in exports {
        for (name, command, length, depth) in cases {
            // One scaled iteration is one batch of `depth` requests; 1 MiB cases are not scaled.
            // The device's tables grow (malloc) until its footprint stops rising; the zram
            // cases warm up long enough to get there, so that only steady state is measured.
            let configuration = Benchmark.Configuration(
                warmupIterations: prefix.isEmpty ? 3 : 20, scalingFactor: length > 4096 ? .one : .kilo)
            Benchmark(prefix + name, configuration: configuration) { (benchmark: Benchmark, client: BenchmarkClient) in
                for _ in benchmark.scaledIterations {
                    try client.roundTrip()
                }
            } setup: {
                try BenchmarkClient(
                    socket: ProtocolServer.shared.socketPath, export: export, command: command, length: length, depth: depth)
            }
        }
    }
}

/// One server for the whole benchmark process.
final class ProtocolServer: Sendable {
    static let shared = ProtocolServer()
    static let memoryExport = "memory"
    static let zramExport = "zram0"

    let socketPath: String
    let server: NBDServer

    private init() {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("znbd-bench-\(getpid())").path
        socketPath = directory + "/nbd.sock"
        let device = ZramDevice(name: Self.zramExport)
        do {
            try device.setAlgorithm(.lz4)
            try device.setDiskSize(64 << 20)
        } catch { fatalError("cannot set up the benchmark device: \(error)") }
        let exports = ExportRegistry(
            defaultExportName: Self.memoryExport,
            exports: [MemoryExport(name: Self.memoryExport, size: 64 << 20), ZramExport(device: device)])
        server = NBDServer(
            configuration: .init(unixSocketPath: socketPath), exports: exports, logger: Logger(label: "bench"))
        do { try server.start() } catch { fatalError("cannot start the benchmark server: \(error)") }
        atexit {
            ProtocolServer.shared.server.shutdown(grace: .seconds(1))
            rmdir(FileManager.default.temporaryDirectory.appendingPathComponent("znbd-bench-\(getpid())").path)
        }
    }
}
