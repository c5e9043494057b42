import Foundation
import Testing

@testable import ZnbdKit

/// A private runtime directory (`ZNBD_RUNTIME_DIR`) for `znbd swapon/swapoff/mount/umount`,
/// so tests never touch /run/znbd and can run beside other suites. `cleanUp()` (also on
/// deinit) undoes whatever is left, first through znbd and then by hand: swap areas,
/// mounts and loop devices over files in the directory, FUSE mounts in it, the server.
final class OperationsSandbox: @unchecked Sendable {  // used from one test at a time
    let directory: String

    init() throws {
        directory = try ZnbdServer.makeTemporaryDirectory()
    }

    deinit { cleanUp() }

    var runtime: String { directory + "/run" }
    var control: String { runtime + "/control.sock" }
    var stateFile: String { runtime + "/state.json" }
    var pidFile: String { runtime + "/znbd.pid" }

    /// Runs `znbd ARGS` with `ZNBD_RUNTIME_DIR` (and `extraEnvironment`) set.
    func znbd(_ arguments: [String], environment: [String: String] = [:], timeout: Double = 300) throws -> CommandResult {
        let variables = ["ZNBD_RUNTIME_DIR=\(runtime)"] + environment.map { "\($0.key)=\($0.value)" }
        return try ExternalCommand.run("env", variables + [ZnbdServer.binary] + arguments, timeout: timeout)
    }

    /// The state file as JSON, or nil when there is none.
    func state() throws -> [String: Any]? {
        guard let data = FileManager.default.contents(atPath: stateFile) else { return nil }
        return try JSONSerialization.jsonObject(with: data) as? [String: Any]
    }

    /// The server pid that the state file says znbd started.
    func daemonPid() throws -> Int32? {
        guard let pid = ((try state())?["daemon"] as? [String: Any])?["pid"] else { return nil }
        return (pid as? Int).map(Int32.init) ?? (pid as? NSNumber)?.int32Value
    }

    /// Loop devices whose backing file is inside the sandbox.
    var loopDevices: [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/block")) ?? []
        return names.filter { $0.hasPrefix("loop") }.compactMap { name in
            guard let file = try? String(contentsOfFile: "/sys/block/\(name)/loop/backing_file", encoding: .utf8),
                file.hasPrefix(directory + "/")
            else { return nil }
            return "/dev/\(name)"
        }.sorted()
    }

    /// Mount points inside the sandbox (nbdfuse's and scratch mounts).
    var mountPoints: [String] {
        let mounts = (try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? ""
        return mounts.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count > 1, fields[1].hasPrefix(directory + "/") else { return nil }
            return String(fields[1])
        }
    }

    /// nbd devices the state file records (hosts with the nbd driver).
    var recordedNBDDevices: [String] {
        let uses = ((try? state()) ?? [:]).flatMap { key, value in
            ["swaps", "mounts"].contains(key) ? (value as? [[String: Any]]) ?? [] : []
        }
        return uses.compactMap { $0["nbdDevice"] as? String }
    }

    /// /proc/swaps entries (device, priority) on our loop (or recorded nbd) devices.
    var swapAreas: [(device: String, priority: Int)] {
        let loops = Set(loopDevices + recordedNBDDevices)
        let swaps = (try? String(contentsOfFile: "/proc/swaps", encoding: .utf8)) ?? ""
        return swaps.split(separator: "\n").dropFirst().compactMap { line in
            let fields = line.split(whereSeparator: \.isWhitespace).map(String.init)
            guard fields.count >= 5, loops.contains(fields[0]), let priority = Int(fields[4]) else { return nil }
            return (fields[0], priority)
        }
    }

    /// Whether `pid` runs (a zombie waiting for its reaper counts as gone).
    static func isAlive(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
        return state != "Z" && state != "X"
    }

    /// Records an issue for everything still set up, so a test can require a clean slate.
    func expectNothingLeft(_ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(swapAreas.isEmpty, "\(what): swap areas left: \(swapAreas)", sourceLocation: sourceLocation)
        #expect(loopDevices.isEmpty, "\(what): loop devices left: \(loopDevices)", sourceLocation: sourceLocation)
        #expect(mountPoints.isEmpty, "\(what): mounts left: \(mountPoints)", sourceLocation: sourceLocation)
        #expect(!FileManager.default.fileExists(atPath: stateFile), "\(what): state file left", sourceLocation: sourceLocation)
        #expect(!FileManager.default.fileExists(atPath: pidFile), "\(what): pidfile left", sourceLocation: sourceLocation)
        #expect(!FileManager.default.fileExists(atPath: control), "\(what): control socket left", sourceLocation: sourceLocation)
        let fuse = (try? FileManager.default.contentsOfDirectory(atPath: runtime + "/nbdfuse")) ?? []
        #expect(fuse.isEmpty, "\(what): nbdfuse directories left: \(fuse)", sourceLocation: sourceLocation)
    }

    /// Undoes everything: through znbd first, then by hand for whatever that missed.
    func cleanUp() {
        guard FileManager.default.fileExists(atPath: directory) else { return }
        let pid = try? daemonPid()
        _ = try? znbd(["swapoff"], timeout: 300)
        _ = try? znbd(["umount", "--all"], timeout: 300)
        for area in swapAreas { _ = try? ExternalCommand.run("swapoff", [area.device], timeout: 300) }
        for mount in mountPoints.reversed() where !mount.hasPrefix(runtime + "/nbdfuse/") && mount != runtime + "/fuse" {
            _ = try? ExternalCommand.run("umount", ["-l", mount], timeout: 60)
        }
        for loop in loopDevices { _ = try? ExternalCommand.run("losetup", ["-d", loop], timeout: 60) }
        for mount in mountPoints.reversed() { _ = try? ExternalCommand.run("fusermount3", ["-uz", mount], timeout: 60) }
        var pids = [pid].compactMap { $0 }
        if let text = try? String(contentsOfFile: pidFile, encoding: .utf8), let filed = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
            pids.append(filed)
        }
        for pid in pids where Self.isAlive(pid) {
            kill(pid, SIGTERM)
            let deadline = Date().addingTimeInterval(10)
            while Self.isAlive(pid) && Date() < deadline { usleep(20_000) }
            if Self.isAlive(pid) { kill(pid, SIGKILL) }
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}
