import ArgumentParser
import SwiftZram
import ZnbdKit

/// `znbd get DEVICE ATTRIBUTE`: cat /sys/block/DEVICE/ATTRIBUTE.
struct GetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        abstract: "Print a device attribute as the kernel's zram prints it.",
        discussion: "Readable: \(ZramAttributeNames.readable).")

    @Argument(help: "Device name, e.g. zram0.") var device: String
    @Argument(help: "Attribute name, e.g. mm_stat.") var attribute: String
    @OptionGroup var options: ControlOptions

    func run() throws {
        print(try options.client.get(device, attribute), terminator: "")
    }
}

/// `znbd set DEVICE ATTRIBUTE VALUE`: echo VALUE > /sys/block/DEVICE/ATTRIBUTE.
struct SetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Write a device attribute, with zram's rules (EBUSY once initialised, EINVAL for bad values).",
        discussion: """
            Writable: \(ZramAttributeNames.writable).

            Recompression, as the kernel's: before disksize, `set zram0 recomp_algorithm 'algo=zstd priority=1'` \
            and `set zram0 algorithm_params 'priority=1 level=3'`; then `set zram0 idle 3600` (or `all`) marks \
            pages not accessed for an hour, and `set zram0 recompress 'type=idle threshold=1024 max_pages=N'` \
            recompresses them (type idle, huge or huge_idle; algo= or priority= pins one algorithm).

            Automatic tiering (beyond the kernel; off by default, and then the device behaves as the kernel's): \
            `set zram0 tiering_enable 1` makes writes at mem_limit write the coldest pages to backing_dev instead \
            of failing, and starts a policy that every tiering_interval seconds marks pages idle after \
            tiering_idle_age, recompresses them, writes back pages unused for tiering_writeback_age, and keeps \
            mem_used_total under tiering_high_watermark (and under PSI pressure over tiering_psi_threshold percent). \
            `get zram0 tiering_stat` prints passes, policy_writeback, policy_recompress, reclaim_writeback, saved_writes.
            """)

    @Argument(help: "Device name, e.g. zram0.") var device: String
    @Argument(help: "Attribute name, e.g. mem_limit.") var attribute: String
    @Argument(help: "The value, e.g. 512M.") var value: String
    @OptionGroup var options: ControlOptions

    func run() throws {
        try options.client.set(device, attribute, value)
    }
}

/// `znbd hot-add`: a new device and export; prints its name.
struct HotAddCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hot-add", abstract: "Create a device (and its NBD export); prints its name.")

    @Option(help: "Initialise it with this disksize (K/M/G/T suffixes).") var size: SizeArgument?
    @Option(help: "Its compression algorithm: lzo, lz4, lz4hc, zstd.") var algorithm: CompressionAlgorithm?
    @OptionGroup var options: ControlOptions

    func run() throws {
        print(try options.client.hotAdd(algorithm: algorithm, diskSize: size?.bytes))
    }
}

/// `znbd hot-remove DEVICE`.
struct HotRemoveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hot-remove", abstract: "Remove a device that no client uses (EBUSY otherwise).")

    @Argument(help: "Device name, e.g. zram1.") var device: String
    @OptionGroup var options: ControlOptions

    func run() throws {
        try options.client.hotRemove(device)
    }
}

enum ZramAttributeNames {
    static let readable = ZramDevice.readableAttributes.joined(separator: ", ")
    static let writable = ZramDevice.writableAttributes.joined(separator: ", ")
}
