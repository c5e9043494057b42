import Foundation

/// What the kernel says is mounted, swapped on, or behind a loop device.
extension DeviceSetup {
    public static func isMountPoint(_ path: String) -> Bool {
        let mounts = (try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? ""
        return mounts.split(separator: "\n").contains { line in
            let fields = line.split(separator: " ")
            return fields.count > 1 && AttachedDevices.unescape(String(fields[1])) == path
        }
    }

    public static func isActiveSwap(_ blockDevice: String) -> Bool {
        let swaps = (try? String(contentsOfFile: "/proc/swaps", encoding: .utf8)) ?? ""
        return swaps.split(separator: "\n").dropFirst().contains { $0.split(separator: " ").first.map(String.init) == blockDevice }
    }

    static func loopBackingFile(_ loop: String) -> String? {
        let name = (loop as NSString).lastPathComponent
        return (try? String(contentsOfFile: "/sys/block/\(name)/loop/backing_file", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
