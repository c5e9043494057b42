import ArgumentParser
import Foundation
import SwiftZram
import ZnbdKit

/// `znbd swapon`: the classic zram boot script in one command.
struct SwapOnCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swapon",
        abstract: "Compressed swap: devices, server and swap areas in one command.",
        discussion: """
            Defaults as the classic zram script: one device per CPU, 50 % of RAM between them, \
            swap priority 100. Starts `znbd serve` in the background (pidfile and log in the \
            runtime directory) unless one answers on the control socket, hot-adds the devices, \
            attaches them (nbd-client, or nbdfuse + losetup without the nbd driver), then mkswap \
            and swapon. Everything is recorded in RUNTIME-DIR/state.json; `znbd swapoff` undoes it, \
            and a setup that fails half way is undone at once. Running it again while the swap \
            is on with the same arguments changes nothing; with other arguments it is an error that \
            says what differs. With --config, every section whose fs-type is swap becomes \
            one swap area with its own size, algorithm, mem-limit and swap-priority.
            """)

    @Option(help: "Total size of all devices (K/M/G/T), split evenly. Default: --percent 50.")
    var size: SizeArgument?

    @Option(help: "Total size as a percentage of RAM.")
    var percent: Double?

    @Option(help: "Number of devices (default: the CPU count).")
    var devices: Int?

    @Option(help: "Swap priority (-1…32767).")
    var priority: Int = 100

    @Option(help: "Compression algorithm: lzo, lz4, lz4hc, zstd (default: the server's, lz4).")
    var algorithm: CompressionAlgorithm?

    @Option(name: .customLong("mem-limit"), help: "Cap on each device's mem_used_total.")
    var memLimit: SizeArgument?

    @Option(help: "Take the swap devices from a zram-generator-style file instead.")
    var config: String?

    @OptionGroup var setup: SetupOptions

    func validate() throws {
        if size != nil && percent != nil { throw ValidationError("--size and --percent exclude each other") }
        if let percent, !(percent > 0 && percent <= 400) { throw ValidationError("--percent must be in (0, 400]") }
        if let devices, !(1...64).contains(devices) { throw ValidationError("--devices must be 1...64") }
        guard (-1...32767).contains(priority) else { throw ValidationError("--priority must be -1...32767") }
        if config != nil && (size != nil || percent != nil || devices != nil) {
            throw ValidationError("--config sizes the devices itself: drop --size, --percent and --devices")
        }
    }

    /// What to set up: from the config file's swap sections, or N equal devices.
    func specs() throws -> [DeviceSpec] {
        if let config {
            let specs = try ZramConfig.load(path: config).specs(ramBytes: MachineMemory.totalBytes, file: config)
                .map(\.spec).filter { $0.fsType == "swap" }
            guard !specs.isEmpty else { throw Tool.Failure(description: "\(config) defines no swap device") }
            return specs
        }
        let count = devices ?? ProcessInfo.processInfo.activeProcessorCount
        let total = size?.bytes ?? UInt64(Double(MachineMemory.totalBytes) * (percent ?? 50) / 100)
        let each = total / UInt64(count) / 4096 * 4096
        guard each >= 40960 else { throw ValidationError("\(HumanSize.format(total)) over \(count) devices is too small for swap") }
        return Array(repeating: DeviceSpec(
            size: each, algorithm: algorithm, memLimit: memLimit?.bytes, swapPriority: priority), count: count)
    }

    func run() throws {
        let specs = try specs()
        let setup = try setup.makeSetup()
        if !setup.state.swaps.isEmpty {
            let active = setup.state.swaps.filter { $0.swapActive && $0.blockDevice.map(DeviceSetup.isActiveSwap) == true }
            if active.count == setup.state.swaps.count {
                let differences = setup.state.swapDifferences(from: specs)
                guard differences.isEmpty else {
                    throw Tool.Failure(description: "swap is already on with other settings (\(differences.joined(separator: "; "))); `znbd swapoff` first to change it")
                }
                let list = active.map { "\($0.device ?? "?") on \($0.blockDevice ?? "?")" }.joined(separator: ", ")
                note("swap is already on (\(list)); nothing to do (`znbd swapoff` first to change it)")
                return
            }
            note("cleaning up an incomplete earlier swap setup")
            try setup.rollBack(\.swaps, from: 0)
        }
        do {
            try setup.ensureServer()
            for spec in specs {
                let use = try setup.addSwap(spec)
                print("\(use.device ?? "?"): \(HumanSize.format(spec.size)) \(spec.algorithm?.rawValue ?? "lz4"), swap on \(use.blockDevice ?? "?") priority \(spec.swapPriority)")
            }
        } catch {
            note("swapon failed: \(error); undoing what was set up")
            do { try setup.rollBack(\.swaps, from: 0) } catch let undo {
                note("could not undo everything (\(undo)); `znbd swapoff` retries")
            }
            throw error
        }
    }
}

/// `znbd swapoff`: undoes `znbd swapon`.
struct SwapOffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swapoff",
        abstract: "Undo `znbd swapon`: swapoff, detach, hot-remove, and stop the server if swapon started it and nothing else uses it.")

    @OptionGroup var setup: SetupOptions

    func run() throws {
        let setup = try setup.makeSetup()
        let devices = setup.state.swaps.compactMap(\.device)
        if setup.state.swaps.isEmpty { note("no swap set up by znbd in \(setup.paths.directory)") }
        try setup.rollBack(\.swaps, from: 0)
        if !devices.isEmpty { print("removed \(devices.joined(separator: ", "))") }
    }
}
