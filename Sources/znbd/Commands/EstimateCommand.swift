import ArgumentParser
import Foundation
import SwiftZram
import ZnbdKit

/// `znbd estimate FILE`: what storing FILE in a device would cost, per algorithm.
struct EstimateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "estimate",
        abstract: "Store a file's pages in a fresh in-process device and print its mm_stat.",
        discussion: """
            Helps choose an algorithm: feed it a memory capture (or any file) and compare \
            orig_data_size, compr_data_size and mem_used_total. Nothing is served.
            """)

    @Argument(help: "The file whose bytes are stored page by page.")
    var file: String

    @Option(name: .shortAndLong, help: "Compression algorithm (repeat to compare several): lzo, lz4, lz4hc, zstd.")
    var algorithm: [CompressionAlgorithm] = [.default]

    @Option(help: "Compression level (acceleration for lz4).")
    var level: Int?

    @Flag(help: "Print the kernel's raw mm_stat line instead of a table.")
    var raw = false

    func run() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: file), options: .alwaysMapped)
        guard !data.isEmpty else { throw ValidationError("\(file) is empty") }
        if !raw {
            print("ALGORITHM        DATA       COMPR       TOTAL  SAME  HUGE  RATIO  WRITE-MB/s")
        }
        for algorithm in algorithm {
            let device = ZramDevice(name: "estimate")
            try device.setAlgorithm(algorithm)
            if let level { try device.setAlgorithmParameters(level: level, dictionary: nil) }
            try device.setDiskSize(UInt64(data.count))
            let clock = ContinuousClock()
            let elapsed = try clock.measure {
                try data.withUnsafeBytes { bytes in
                    var offset = 0
                    let chunk = 1 << 20
                    while offset < bytes.count {
                        let end = min(bytes.count, offset + chunk)
                        try device.write(UnsafeRawBufferPointer(rebasing: bytes[offset..<end]), at: UInt64(offset))
                        offset = end
                    }
                }
            }
            let stat = device.memoryStatistics
            if raw {
                print(algorithm, stat.kernelText, terminator: "")
                continue
            }
            let ratio = stat.memUsedTotal == 0 ? 0 : Double(stat.origDataSize) / Double(stat.memUsedTotal)
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let throughput = Double(data.count) / 1e6 / max(seconds, 1e-9)
            print(
                algorithm.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0),
                pad(stat.origDataSize), pad(stat.comprDataSize), pad(stat.memUsedTotal),
                String(stat.samePages).leftPadded(5), String(stat.hugePages).leftPadded(5),
                String(format: "%6.2f", ratio), String(format: "%11.0f", throughput))
        }
    }

    private func pad(_ value: UInt64) -> String { String(value).leftPadded(11) }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
