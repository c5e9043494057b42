#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SwiftZram

/// What one device should be: from the command line or a `[zramN]` config section.
public struct DeviceSpec: Sendable, Equatable {
    public var size: UInt64
    public var algorithm: CompressionAlgorithm?
    public var level: Int?
    public var memLimit: UInt64?
    public var swapPriority: Int = 100
    public var fsType: String = "swap"
    public var mountPoint: String?
    /// Extra `swapon -o` or `mount -o` options.
    public var options: String?

    public init(
        size: UInt64, algorithm: CompressionAlgorithm? = nil, level: Int? = nil, memLimit: UInt64? = nil,
        swapPriority: Int = 100, fsType: String = "swap", mountPoint: String? = nil, options: String? = nil
    ) {
        self.size = size
        self.algorithm = algorithm
        self.level = level
        self.memLimit = memLimit
        self.swapPriority = swapPriority
        self.fsType = fsType
        self.mountPoint = mountPoint
        self.options = options
    }
}

/// How exports reach the kernel.
public enum AttachMethod: String, CaseIterable, Sendable {
    /// nbd-client when `modprobe nbd` succeeds, else nbdfuse + losetup.
    case auto
    /// nbd-client -unix SOCK -N zramK -b 4096 /dev/nbdK.
    case nbd
    /// nbdfuse RUNTIME/nbdfuse/zramK, then losetup over RUNTIME/nbdfuse/zramK/nbd.
    case fuse
}

/// Sets devices up for swap or a scratch mount and takes them down again, recording
/// each step in the state file as it is done (see `SetupState`). Holds the runtime
/// directory's lock for its lifetime.
public final class DeviceSetup {
    public let paths: RuntimePaths
    public let control: String
    public let unix: String
    public private(set) var state: SetupState
    private let lock: RuntimeLock
    private var method: AttachMethod
    private var failPoints: FailPoints
    /// Whether this run started the server.
    public private(set) var startedServer = false
    private var client: ControlClient { ControlClient(path: control) }

    public init(
        paths: RuntimePaths, control: String? = nil, unix: String? = nil, attach: AttachMethod = .auto,
        failPoints: FailPoints = FailPoints()
    ) throws {
        self.paths = paths
        lock = try RuntimeLock(paths)
        state = try SetupState.load(from: paths.stateFile)
        // The recorded devices live on the server recorded with them.
        self.control = control ?? state.control ?? paths.controlSocket
        self.unix = unix ?? state.unix ?? paths.nbdSocket
        method = attach
        self.failPoints = failPoints
    }

    func save() throws { try state.save(to: paths.stateFile) }

    private func update(_ list: WritableKeyPath<SetupState, [SetupState.Use]>, _ index: Int,
                        _ body: (inout SetupState.Use) -> Void) throws {
        body(&state[keyPath: list][index])
        try save()
    }

    // MARK: - Setting up

    /// Reuses the server answering on the control socket, or starts one in the background.
    public func ensureServer() throws {
        if !state.isEmpty, let recorded = state.control, recorded != control {
            throw Tool.Failure(description: "\(paths.stateFile) records devices on the server at \(recorded); undo them first or use another --runtime-dir")
        }
        state.control = control
        state.unix = unix
        if Daemon.isAnswering(control) { return }
        if let stale = state.daemon {
            note("the server znbd started earlier (pid \(stale.pid)) is gone; starting a new one")
            state.daemon = nil
        }
        state.daemon = try Daemon.start(paths, control: control, unix: unix)
        startedServer = true
        try save()
        note("started znbd serve (pid \(state.daemon!.pid)), log \(paths.logFile)")
        try failPoints.check(.daemon)
    }

    /// Creates, attaches and enables one swap area; recorded in `state.swaps`.
    public func addSwap(_ spec: DeviceSpec) throws -> SetupState.Use {
        state.swaps.append(SetupState.Use(priority: spec.swapPriority))
        try save()
        let index = state.swaps.count - 1
        try createAndAttach(spec, \.swaps, index)
        let block = state.swaps[index].blockDevice!
        try Tool.require("mkswap", [block])
        try failPoints.check(.mkswap)
        var arguments = ["-p", String(spec.swapPriority)]
        if let options = spec.options, !options.isEmpty { arguments += ["-o", options] }
        try Tool.require("swapon", arguments + [block])
        try update(\.swaps, index) { $0.swapActive = true }
        try failPoints.check(.swapon)
        return state.swaps[index]
    }

    /// Creates, attaches, formats and mounts one scratch file system; recorded in `state.mounts`.
    public func addMount(_ spec: DeviceSpec, at directory: String) throws -> SetupState.Use {
        state.mounts.append(SetupState.Use(mountPoint: directory, fsType: spec.fsType))
        try save()
        let index = state.mounts.count - 1
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) {
            try RuntimeLock.makeDirectory(directory)
            try update(\.mounts, index) { $0.createdMountPoint = true }
        } else if !isDirectory.boolValue {
            throw Tool.Failure(description: "\(directory) is not a directory")
        }
        try createAndAttach(spec, \.mounts, index)
        let block = state.mounts[index].blockDevice!
        try Tool.require("mkfs.\(spec.fsType)", Self.mkfsArguments(spec.fsType) + [block], timeout: 600)
        try failPoints.check(.mkfs)
        let options = ["discard"] + (spec.options.map { [$0] } ?? [])
        try Tool.require("mount", ["-t", spec.fsType, "-o", options.joined(separator: ","), block, directory])
        try update(\.mounts, index) { $0.mounted = true }
        try failPoints.check(.mount)
        return state.mounts[index]
    }

    /// mkfs options that skip the discard pass (the device starts empty) and stay quiet.
    static func mkfsArguments(_ fsType: String) -> [String] {
        switch fsType {
        case "ext2", "ext3", "ext4": ["-q", "-E", "nodiscard"]
        case "xfs", "btrfs": ["-q", "-K"]
        case "f2fs": ["-q", "-t", "0"]
        default: []
        }
    }

    private func createAndAttach(_ spec: DeviceSpec, _ list: WritableKeyPath<SetupState, [SetupState.Use]>, _ index: Int) throws {
        let name = try client.hotAdd()
        try update(list, index) { $0.device = name }
        // zram's order: algorithm and its parameters, then the limit, then disksize.
        if let algorithm = spec.algorithm { try set(name, "comp_algorithm", algorithm.rawValue) }
        if let level = spec.level { try set(name, "algorithm_params", "level=\(level)") }
        if let memLimit = spec.memLimit { try set(name, "mem_limit", String(memLimit)) }
        try set(name, "disksize", String(spec.size))
        try failPoints.check(.hotAdd)

        switch try resolvedMethod() {
        case .nbd: try attachWithNBDClient(name, list, index)
        case .fuse, .auto: try attachWithFUSE(name, list, index)
        }
        try failPoints.check(.attach)
    }

    private func set(_ device: String, _ attribute: String, _ value: String) throws {
        try client.set(device, attribute, value)
    }

    /// `auto` becomes nbd when `modprobe nbd` succeeds and /dev/nbd0 exists, else fuse (said once on stderr).
    private func resolvedMethod() throws -> AttachMethod {
        switch method {
        case .nbd, .fuse: return method
        case .auto:
            let loaded = (try? Tool.run("modprobe", ["nbd"], timeout: 30))?.succeeded ?? false
            if loaded && FileManager.default.fileExists(atPath: "/sys/block/nbd0") {
                method = .nbd
            } else {
                method = .fuse
                note("the kernel has no nbd driver (modprobe nbd failed): attaching through nbdfuse + loop instead")
            }
            return method
        }
    }

    private func attachWithNBDClient(_ name: String, _ list: WritableKeyPath<SetupState, [SetupState.Use]>, _ index: Int) throws {
        try update(list, index) { $0.method = AttachMethod.nbd.rawValue }
        var lastError = "no free /dev/nbdN"
        for nbd in Self.freeNBDDevices() {
            let output = try Tool.run("nbd-client", ["-unix", unix, "-N", name, "-b", "4096", nbd], timeout: 60)
            if output.succeeded {
                try update(list, index) { $0.nbdDevice = nbd }
                return
            }
            lastError = output.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        throw Tool.Failure(description: "nbd-client could not attach \(name): \(lastError)")
    }

    /// nbd devices with no client, lowest first.
    static func freeNBDDevices() -> [String] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: "/sys/block")) ?? [])
            .filter { $0.hasPrefix("nbd") && Int($0.dropFirst(3)) != nil }
            .sorted { Int($0.dropFirst(3))! < Int($1.dropFirst(3))! }
        return names.filter { name in
            let size = (try? String(contentsOfFile: "/sys/block/\(name)/size", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines)
            return !FileManager.default.fileExists(atPath: "/sys/block/\(name)/pid") && (size == nil || size == "0")
        }.map { "/dev/\($0)" }
    }

    private func attachWithFUSE(_ name: String, _ list: WritableKeyPath<SetupState, [SetupState.Use]>, _ index: Int) throws {
        let mountPoint = paths.fuseMountPoint(export: name)
        try RuntimeLock.makeDirectory(mountPoint)
        try update(list, index) {
            $0.method = AttachMethod.fuse.rawValue
            $0.fuseMountPoint = mountPoint
        }
        guard let nbdfuse = Tool.path(of: "nbdfuse") else { throw Tool.Failure(description: "nbdfuse is not installed") }
        let pid = try Tool.spawnDetached(nbdfuse, [mountPoint, "nbd+unix:///\(name)?socket=\(unix)"], log: paths.logFile)
        try update(list, index) { $0.fusePid = pid }
        let file = mountPoint + "/nbd"
        let deadline = Date().addingTimeInterval(30)
        while !(Self.isMountPoint(mountPoint) && FileManager.default.fileExists(atPath: file)) {
            Tool.reap(pid)
            guard Tool.isAlive(pid), Date() < deadline else {
                throw Tool.Failure(description: "nbdfuse did not expose \(file) (see \(paths.logFile))")
            }
            usleep(20_000)
        }
        let loop = try Tool.require("losetup", ["-f", "--show", file]).trimmingCharacters(in: .whitespacesAndNewlines)
        guard loop.hasPrefix("/dev/") else { throw Tool.Failure(description: "losetup printed '\(loop)'") }
        try update(list, index) { $0.loopDevice = loop }
    }

    // MARK: - Taking down

    /// Undoes one recorded use, newest step first. Each undone step is saved at once;
    /// when a step fails the rest stays recorded (so a later run can finish) and this throws.
    public func teardown(_ list: WritableKeyPath<SetupState, [SetupState.Use]>, _ index: Int) throws {
        var use: SetupState.Use { state[keyPath: list][index] }
        if use.swapActive, let block = use.blockDevice {
            try Tool.require("swapoff", [block], timeout: 600)
            try update(list, index) { $0.swapActive = false }
        }
        if use.mounted, let mountPoint = use.mountPoint {
            try Tool.require("umount", [mountPoint], timeout: 300)
            try update(list, index) { $0.mounted = false }
        }
        if use.createdMountPoint, let mountPoint = use.mountPoint {
            rmdir(mountPoint)
            try update(list, index) { $0.createdMountPoint = false }
        }
        if let loop = use.loopDevice {
            // Only our loop device: the one still backed by our nbdfuse file.
            if let file = Self.loopBackingFile(loop), file == use.fuseMountPoint.map({ $0 + "/nbd" }) ?? file {
                try Tool.require("losetup", ["-d", loop], timeout: 60)
            }
            try update(list, index) { $0.loopDevice = nil }
        }
        if let nbd = use.nbdDevice {
            try Tool.require("nbd-client", ["-d", nbd], timeout: 60)
            try update(list, index) { $0.nbdDevice = nil }
        }
        if let mountPoint = use.fuseMountPoint {
            try unmountFUSE(mountPoint, pid: use.fusePid)
            try update(list, index) {
                $0.fuseMountPoint = nil
                $0.fusePid = nil
            }
        }
        if let device = use.device {
            try removeDevice(device)
            try update(list, index) { $0.device = nil }
        }
        state[keyPath: list].remove(at: index)
        try save()
    }

    private func unmountFUSE(_ mountPoint: String, pid: Int32?) throws {
        // The loop driver lets go of the file asynchronously: retry while it is busy.
        var attempts = 0
        while Self.isMountPoint(mountPoint) {
            let output = try Tool.run("fusermount3", ["-u", mountPoint], timeout: 30)
            if output.succeeded { break }
            attempts += 1
            if attempts >= 50 {
                throw Tool.Failure(description: "fusermount3 -u \(mountPoint) failed: \(output.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
            }
            usleep(100_000)
        }
        if let pid, pid > 0, !Tool.waitForExit(pid, seconds: 10) {
            kill(pid, SIGTERM)
            _ = Tool.waitForExit(pid, seconds: 5)
        }
        if rmdir(mountPoint) != 0 && errno != ENOENT {
            note("could not remove \(mountPoint): \(String(cString: strerror(errno)))")
        }
        rmdir(paths.nbdfuseDirectory)  // only when empty
    }

    /// hot-remove, waiting for the last NBD client to go (nbdfuse closes its connections as it exits).
    private func removeDevice(_ device: String) throws {
        guard Daemon.isAnswering(control) else { return }  // the server is gone, and its devices with it
        let deadline = Date().addingTimeInterval(15)
        while true {
            do throws(ControlError) {
                try client.hotRemove(device)
                return
            } catch {
                switch error.kind {
                case .noDevice: return
                case .busy where Date() < deadline: usleep(100_000)
                default: throw error
                }
            }
        }
    }

    /// Stops the server if we started it and it is now unused: nothing recorded, no devices left.
    public func stopServerIfUnused() throws {
        guard let daemon = state.daemon, state.swaps.isEmpty, state.mounts.isEmpty else { return }
        if let status = try? client.status(), !status.devices.isEmpty {
            note("leaving znbd serve (pid \(daemon.pid)) running: it still has \(status.devices.map(\.name).joined(separator: ", "))")
            return
        }
        try Daemon.stop(daemon)
        state.daemon = nil
        try save()
    }

    /// Undoes everything recorded in `list` from `start` on (newest first), then stops the
    /// server if we started it and nothing uses it; the first error is rethrown after trying the rest.
    public func rollBack(_ list: WritableKeyPath<SetupState, [SetupState.Use]>, from start: Int) throws {
        var firstError: Error?
        var index = state[keyPath: list].count - 1
        while index >= start {
            do { try teardown(list, index) } catch { firstError = firstError ?? error }
            index -= 1
        }
        do { try stopServerIfUnused() } catch { firstError = firstError ?? error }
        if let firstError { throw firstError }
    }

    // MARK: - Kernel facts

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

/// `znbd: MESSAGE` on stderr.
public func note(_ message: String) {
    FileHandle.standardError.write(Data("znbd: \(message)\n".utf8))
}
