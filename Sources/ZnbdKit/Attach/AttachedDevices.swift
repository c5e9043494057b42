import Foundation

/// Where the kernel uses our exports: swap areas and mounts on `/dev/nbdN`
/// (attached by nbd-client) or on loop devices over nbdfuse files or over the files
/// of a server's own FUSE export.
public enum AttachedDevices {
    /// Mount point (or `[SWAP]`) by export name, for the server whose sockets live in
    /// `serverDirectory` (when known). Block devices that `znbd swapon`/`mount` recorded in
    /// `state` map to the device recorded with them. Loop devices over nbdfuse map to the
    /// export in nbdfuse's URI, if its socket is in `serverDirectory`; others are recognised
    /// by the nbd driver's backend or by the nbdfuse file's directory name.
    public static func discover(state: SetupState = SetupState(), serverDirectory: String? = nil) -> [String: String] {
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
        let fuse = nbdfuseExports()
        var result: [String: String] = [:]
        var fromState: Set<String> = []
        for (blockDevice, use) in byBlockDevice.sorted(by: { $0.key < $1.key }) {
            if let export = recorded[blockDevice] {
                result[export] = use
                fromState.insert(export)
                continue
            }
            let name = (blockDevice as NSString).lastPathComponent
            if name.hasPrefix("loop"), let file = loopBackingFile(name), let served = fuse[file] {
                // nbdfuse says which server and export: only ours count.
                if let serverDirectory, (served.socket as NSString).deletingLastPathComponent != serverDirectory { continue }
                if !fromState.contains(served.export) { result[served.export] = use }
                continue
            }
            if name.hasPrefix("loop"), let file = loopBackingFile(name),
                (file as NSString).deletingLastPathComponent.hasSuffix("/fuse")
            {
                // Over a file of a server's own FUSE export (`znbd attach`): only our server's count.
                let directory = (file as NSString).deletingLastPathComponent
                if let serverDirectory, directory != serverDirectory + "/fuse" { continue }
                let export = (file as NSString).lastPathComponent
                if !fromState.contains(export) { result[export] = use }
                continue
            }
            if let export = exportName(of: blockDevice), !fromState.contains(export) { result[export] = use }
        }
        return result
    }

    /// Running nbdfuse processes: the file each one serves (MOUNTPOINT/nbd) → export and socket from its URI.
    static func nbdfuseExports() -> [String: (export: String, socket: String)] {
        var result: [String: (export: String, socket: String)] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where Int(entry) != nil {
            guard let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline"), !data.isEmpty else { continue }
            let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            guard let program = arguments.first, (program as NSString).lastPathComponent == "nbdfuse",
                let uriIndex = arguments.firstIndex(where: { $0.hasPrefix("nbd+unix://") }), uriIndex > 1
            else { continue }
            let mountPoint = arguments[uriIndex - 1]
            guard let components = URLComponents(string: arguments[uriIndex]),
                let socket = components.queryItems?.first(where: { $0.name == "socket" })?.value
            else { continue }
            let export = String(components.path.drop { $0 == "/" })
            guard !export.isEmpty else { continue }
            result[mountPoint + "/nbd"] = (export, socket)
            result[mountPoint] = (export, socket)
        }
        return result
    }

    static func loopBackingFile(_ name: String) -> String? {
        (try? String(contentsOfFile: "/sys/block/\(name)/loop/backing_file", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
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
