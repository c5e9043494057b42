import ArgumentParser
import Foundation
import ZnbdKit

/// `znbd check-config FILE`: what a configuration file would create, without creating it.
struct CheckConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Parse a zram-generator-style file and print the devices it defines.",
        discussion: """
            TIERING is off, on, or on:WATERMARK (tiering-high-watermark). \
            Errors name the file and line (FILE:LINE: message) and exit non-zero.
            """)

    @Argument(help: "The configuration file.")
    var file: String

    @Option(help: "Evaluate zram-size for this much RAM instead of this machine's (K/M/G/T).")
    var ram: SizeArgument?

    @Flag(help: "Print sizes in bytes.")
    var bytes = false

    /// The primary algorithm, then the recompression algorithms as the config spells them.
    private func algorithms(_ spec: DeviceSpec) -> String {
        ([spec.algorithm?.rawValue ?? "-"] + spec.recompression.map { choice in
            choice.level.map { "\(choice.algorithm)(level=\($0))" } ?? choice.algorithm.rawValue
        }).joined(separator: " ")
    }

    /// `off`, `on`, or `on:WATERMARK` when a high watermark is set.
    private func tiering(_ spec: DeviceSpec, _ size: (UInt64) -> String) -> String {
        guard spec.tiering else { return "off" }
        return spec.tieringHighWatermark.map { "on:" + size($0) } ?? "on"
    }

    func run() throws {
        let config = try ZramConfig.load(path: file)
        let specs = try config.specs(ramBytes: ram?.bytes ?? MachineMemory.totalBytes, file: file)
        func size(_ value: UInt64) -> String { bytes ? String(value) : HumanSize.format(value) }
        let rows = specs.map { name, spec in
            [name, size(spec.size), algorithms(spec), spec.level.map(String.init) ?? "-",
             spec.memLimit.map(size) ?? "-", spec.fsType,
             spec.fsType == "swap" ? String(spec.swapPriority) : (spec.mountPoint ?? "-"),
             spec.writebackDevice ?? "-", tiering(spec, size)]
        }
        print(StatusTable.render(
            header: ["NAME", "DISKSIZE", "ALGORITHM", "LEVEL", "MEM-LIMIT", "TYPE", "PRIORITY/MOUNTPOINT", "WRITEBACK", "TIERING"],
            rows: rows, raw: false, rightAligned: [false, true, false, true, true, false, false, false, false]))
    }
}
