import Foundation

/// Where the kernel uses our exports: swap areas and mounts on `/dev/nbdN`
/// (attached by nbd-client) or on loop devices over nbdfuse files.
enum AttachedDevices {
    /// Mount point (or `[SWAP]`) by export name. Block devices that `znbd swapon`/`mount`
    /// recorded in `state` map to the device recorded with them; others are recognised
    /// by the nbd driver's backend or the loop device's nbdfuse file.
    static func discover(state: SetupState = SetupState()) -> [String: String] {
        var recorded: [String: String] = [:]
        for use in state.swaps + state.mounts {
            if let block = use.blockDevice, let device = use.device { recorded[block] = device }
        }
        var byBlockDevice: [String: String] = [:]
        for line in lines("/proc/swaps").dropFirst() {
            if let device = line.split(separator: " ").first { byBlockDevice[String(device)] = "[SWAP]" }
        }
        for line in lines("/proc/self/mounts") {
            let fields = line.split(separator: " ")
            if fields.count > 1, fields[0].hasPrefix("/dev/") {
                byBlockDevice[String(fields[0])] = unescape(String(fields[1]))
            }
        }
        var result: [String: String] = [:]
        for (blockDevice, use) in byBlockDevice {
            if let export = recorded[blockDevice] ?? exportName(of: blockDevice) { result[export] = use }
        }
        return result
    }

    /// The export behind a block device, from the nbd driver's or the loop driver's sysfs.
    static func exportName(of blockDevice: String) -> String? {
        let name = (blockDevice as NSString).lastPathComponent
        if name.hasPrefix("nbd") {
            // nbd-client records the export in the device's backend (kernel 5.x+), else assume zramN = nbdN.
            if let backend = try? String(contentsOfFile: "/sys/block/\(name)/backend", encoding: .utf8),
                !backend.isEmpty
            {
                return backend.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            return nil
        }
        if name.hasPrefix("loop"),
            let file = try? String(contentsOfFile: "/sys/block/\(name)/loop/backing_file", encoding: .utf8)
        {
            // znbd mounts each export with nbdfuse at .../<export>/nbd (see `znbd swapon`).
            let components = file.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "/")
            if components.count >= 2, components.last == "nbd" { return String(components[components.count - 2]) }
        }
        return nil
    }

    private static func lines(_ path: String) -> [Substring] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n")
    }

    /// /proc/mounts escapes spaces and such as octal (`\040`).
    static func unescape(_ field: String) -> String {
        var out = ""
        var chars = Array(field)[...]
        while let c = chars.popFirst() {
            if c == "\\", chars.count >= 3, let code = UInt8(String(chars.prefix(3)), radix: 8) {
                out.append(Character(UnicodeScalar(code)))
                chars = chars.dropFirst(3)
            } else {
                out.append(c)
            }
        }
        return out
    }
}
