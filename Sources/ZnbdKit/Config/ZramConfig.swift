import Foundation
import NBDBacking
import SwiftZram

/// A device configuration file in zram-generator's format:
///
/// ```ini
/// # comment
/// [zram0]
/// zram-size = min(ram / 2, 4096)
/// compression-algorithm = zstd(level=3)
/// swap-priority = 100
///
/// [zram1]
/// zram-size = 512
/// fs-type = ext4
/// mount-point = /var/scratch
/// mem-limit = 256M
/// ```
///
/// One `[zramN]` section per device; comments are whole lines starting with `#` or `;`. Keys: `zram-size` (an expression in MiB over
/// `ram`, default `min(ram / 2, 4096)`), `compression-algorithm` (`NAME` or
/// `NAME(level=N)`; `lzo-rle` means lzo; a space-separated list: the first is the primary,
/// up to three more are recompression algorithms in priority order), `swap-priority` (-1…32767, default 100),
/// `fs-type` (`swap` unless `mount-point` is set, then `ext4`), `mount-point`
/// (absolute), `mem-limit` (a memparse size, `0`/`none` for no limit) and
/// `options` (extra `swapon -o` / `mount -o` options), `writeback-device` (the device's
/// `backing_dev`: an absolute path or an NBD URI), and beyond zram-generator `tiering`
/// (`on`/`off`, default off: automatic tiering) and `tiering-high-watermark` (a memparse
/// size, `0`/`none` for none). Every error names its line.
public struct ZramConfig: Sendable, Equatable {
    public struct Device: Sendable, Equatable {
        public var name: String
        /// The section's line, for messages.
        public var line: Int
        var sizeText = "min(ram / 2, 4096)"
        public var size: SizeExpression = .call("min", [.binary("/", .ram, .number(2)), .number(4096)])
        var sizeLine: Int?
        public var algorithm: CompressionAlgorithm?
        public var level: Int?
        /// The algorithms after the first in `compression-algorithm`: priorities 1, 2, 3.
        public var recompression: [RecompressionChoice] = []
        public var swapPriority = 100
        public var fsType: String?
        public var mountPoint: String?
        public var memLimit: UInt64?
        public var options: String?
        /// `backing_dev`, set before disksize.
        public var writebackDevice: String?
        public var tiering = false
        public var tieringHighWatermark: UInt64?

        var effectiveFSType: String { fsType ?? (mountPoint == nil ? "swap" : "ext4") }
        var isSwap: Bool { effectiveFSType == "swap" }
    }

    /// `FILE:LINE: message`.
    public struct Error: Swift.Error, Equatable, CustomStringConvertible {
        public var file: String
        public var line: Int
        public var message: String
        public var description: String { "\(file):\(line): \(message)" }
    }

    static let keys = [
        "zram-size", "compression-algorithm", "swap-priority", "fs-type", "mount-point", "mem-limit", "options",
        "writeback-device", "tiering", "tiering-high-watermark",
    ]

    public var devices: [Device]

    public static func load(path: String) throws -> ZramConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Error(file: path, line: 0, message: "cannot read the file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw Error(file: path, line: 0, message: "not UTF-8 text")
        }
        return try parse(text, file: path)
    }

    /// `\r\n` is one Character in Swift: CRLF files would otherwise be one long line.
    private static func isLineBreak(_ c: Character) -> Bool { c == "\n" || c == "\r\n" }

    public static func parse(_ text: String, file: String = "<config>") throws(Error) -> ZramConfig {
        var devices: [Device] = []
        var seenKeys: Set<String> = []
        for (offset, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: Self.isLineBreak).enumerated() {
            let number = offset + 1
            func fail(_ message: String) -> Error { Error(file: file, line: number, message: message) }
            let line = rawLine.trimmingCharacters(in: .whitespaces.union(CharacterSet(charactersIn: "\r")))
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }

            if line.hasPrefix("[") {
                guard line.hasSuffix("]"), line.count >= 2 else { throw fail("a section header must end with ']'") }
                let name = line.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
                guard name.hasPrefix("zram"), let index = Int(name.dropFirst(4)), index >= 0, index < 1024,
                    name == "zram\(index)"
                else {
                    throw fail("section [\(name)] is not a device name like [zram0]")
                }
                if let earlier = devices.first(where: { $0.name == name }) {
                    throw fail("[\(name)] is already defined on line \(earlier.line)")
                }
                devices.append(Device(name: name, line: number))
                seenKeys = []
                continue
            }

            guard let equals = line.firstIndex(of: "=") else {
                throw fail("expected 'key = value' or a [zramN] section header, got '\(line)'")
            }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            let value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            guard !devices.isEmpty else { throw fail("'\(key)' comes before any [zramN] section") }
            guard keys.contains(key) else {
                throw fail("unknown key '\(key)'; known keys: \(keys.joined(separator: ", "))")
            }
            guard seenKeys.insert(key).inserted else { throw fail("'\(key)' is set twice in [\(devices[devices.count - 1].name)]") }
            guard !value.isEmpty else { throw fail("'\(key)' has no value") }

            var device = devices.removeLast()
            switch key {
            case "zram-size":
                do {
                    device.size = try SizeExpression.parse(value)
                } catch {
                    throw fail("zram-size '\(value)': \(error)")
                }
                device.sizeText = value
                device.sizeLine = number
            case "compression-algorithm":
                let list = try parseAlgorithmList(value, fail: fail)
                (device.algorithm, device.level) = list[0]
                device.recompression = list.dropFirst().map { RecompressionChoice(algorithm: $0.0, level: $0.1) }
            case "swap-priority":
                guard let priority = Int(value), (-1...32767).contains(priority) else {
                    throw fail("swap-priority '\(value)' must be a whole number from -1 to 32767")
                }
                device.swapPriority = priority
            case "fs-type":
                guard value.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." }) else {
                    throw fail("fs-type '\(value)' is not a file system type")
                }
                device.fsType = value
            case "mount-point":
                guard value.hasPrefix("/") else { throw fail("mount-point '\(value)' must be an absolute path") }
                device.mountPoint = value
            case "mem-limit":
                if value == "none" || value == "0" {
                    device.memLimit = nil
                } else {
                    guard let bytes = memparse(value) else { throw fail("mem-limit '\(value)' is not a size such as 512M") }
                    guard bytes <= ZramDevice.maximumMemoryLimit else {
                        throw fail("mem-limit '\(value)' is too large (at most \(ZramDevice.maximumMemoryLimit) bytes)")
                    }
                    device.memLimit = bytes
                }
            case "writeback-device":
                device.writebackDevice = try parseWritebackDevice(value, fail: fail)
            case "tiering":
                switch value {
                case "on", "yes", "true", "1": device.tiering = true
                case "off", "no", "false", "0": device.tiering = false
                default: throw fail("tiering '\(value)' must be on or off")
                }
            case "tiering-high-watermark":
                if value == "none" || value == "0" {
                    device.tieringHighWatermark = nil
                } else {
                    guard let bytes = memparse(value) else {
                        throw fail("tiering-high-watermark '\(value)' is not a size such as 768M")
                    }
                    device.tieringHighWatermark = bytes
                }
            default:  // options
                device.options = value
            }
            devices.append(device)
        }
        for device in devices {
            if device.mountPoint != nil && device.isSwap {
                throw Error(file: file, line: device.line, message: "[\(device.name)] has a mount-point but fs-type swap")
            }
        }
        return ZramConfig(devices: devices)
    }

    /// `lz4 zstd(level=3)`: algorithms separated by spaces (outside parentheses), at most
    /// one primary and three recompression algorithms, as zram-generator.
    private static func parseAlgorithmList(_ value: String, fail: (String) -> Error) throws(Error) -> [(CompressionAlgorithm, Int?)] {
        var items: [String] = []
        var current = ""
        var depth = 0
        for character in value {
            if character == "(" { depth += 1 }
            if character == ")" { depth -= 1 }
            if character.isWhitespace && depth == 0 {
                if !current.isEmpty { items.append(current) }
                current = ""
            } else {
                current.append(character)
            }
        }
        if !current.isEmpty { items.append(current) }
        guard items.count <= 1 + ZramDevice.recompressionPriorities else {
            throw fail("compression-algorithm '\(value)': at most one algorithm and \(ZramDevice.recompressionPriorities) recompression algorithms")
        }
        var result: [(CompressionAlgorithm, Int?)] = []
        for item in items { result.append(try parseAlgorithm(item, fail: fail)) }
        return result
    }

    /// `lz4`, `zstd(level=3)`; `lzo-rle` (zram's default name) is our lzo.
    private static func parseAlgorithm(_ value: String, fail: (String) -> Error) throws(Error) -> (CompressionAlgorithm, Int?) {
        var name = Substring(value)
        var level: Int?
        if let open = value.firstIndex(of: "(") {
            guard value.hasSuffix(")") else { throw fail("compression-algorithm '\(value)': missing ')'") }
            name = value[..<open]
            let parameters = value[value.index(after: open)..<value.index(before: value.endIndex)]
            for parameter in parameters.split(separator: ",") {
                let pair = parameter.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard pair.count == 2, pair[0] == "level", let parsed = Int(pair[1]) else {
                    throw fail("compression-algorithm '\(value)': only (level=N) is supported")
                }
                level = parsed
            }
        }
        let trimmed = name.trimmingCharacters(in: .whitespaces)
        guard let algorithm = CompressionAlgorithm(rawValue: trimmed == "lzo-rle" ? "lzo" : trimmed) else {
            throw fail("unknown compression-algorithm '\(trimmed)'; available: \(CompressionAlgorithm.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let level, !algorithm.levels.contains(level) {
            throw fail("level \(level) is out of range for \(algorithm) (\(algorithm.levels))")
        }
        return (algorithm, level)
    }

    /// An absolute path (a block device or a file) or an NBD URI, as `backing_dev` takes them.
    private static func parseWritebackDevice(_ value: String, fail: (String) -> Error) throws(Error) -> String {
        if NBDURI.isURI(value) {
            guard NBDURI.isSupported(value) else {
                throw fail("writeback-device '\(value)': supported NBD URIs start with \(NBDURI.schemes.joined(separator: ", "))")
            }
            return value
        }
        guard value.hasPrefix("/") else {
            throw fail("writeback-device '\(value)' must be an absolute path or an NBD URI (nbd://...)")
        }
        return value
    }

    /// Each device's size in bytes for a machine with `ramBytes` of memory (rounded down to
    /// whole pages). A size that evaluates to 0 means "no device", as in zram-generator.
    public func specs(ramBytes: UInt64, file: String = "<config>") throws(Error) -> [(name: String, spec: DeviceSpec)] {
        let ram = Double(ramBytes) / 1_048_576
        var result: [(name: String, spec: DeviceSpec)] = []
        for device in devices {
            let mib: Double
            do { mib = try device.size.evaluate(ram: ram) } catch {
                throw Error(file: file, line: device.sizeLine ?? device.line, message: "zram-size '\(device.sizeText)' of \(device.name): \(error)")
            }
            // The largest device is 32 PiB (2^35 MiB): the same limit as `disksize`.
            let maximumMiB = Double(ZramDevice.maximumDiskSize / 1_048_576)
            guard mib.isFinite, mib >= 0, mib <= maximumMiB else {
                throw Error(file: file, line: device.sizeLine ?? device.line,
                            message: "zram-size '\(device.sizeText)' of \(device.name) is \(mib) MiB; it must be between 0 and \(Int(maximumMiB)) (32 PiB)")
            }
            let bytes = UInt64(mib * 1_048_576) / 4096 * 4096
            if bytes == 0 { continue }
            result.append((device.name, DeviceSpec(
                size: bytes, algorithm: device.algorithm, level: device.level, memLimit: device.memLimit,
                swapPriority: device.swapPriority, fsType: device.effectiveFSType, mountPoint: device.mountPoint,
                options: device.options, recompression: device.recompression,
                writebackDevice: device.writebackDevice)))
            result[result.count - 1].spec.tiering = device.tiering
            result[result.count - 1].spec.tieringHighWatermark = device.tieringHighWatermark
        }
        return result
    }
}

/// The machine's memory, for `ram` and the 50 % default.
public enum MachineMemory {
    public static var totalBytes: UInt64 {
        UInt64(sysconf(Int32(_SC_PHYS_PAGES))) * UInt64(sysconf(Int32(_SC_PAGESIZE)))
    }
}
