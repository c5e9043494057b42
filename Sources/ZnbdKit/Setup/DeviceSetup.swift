#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SwiftZram

/// Sets devices up for swap or a scratch mount and takes them down again, recording
/// each step in the state file as it is done (see `SetupState`). Holds the runtime
/// directory's lock for its lifetime.
public final class DeviceSetup {
    public let paths: RuntimePaths
    public let control: String
    public let unix: String
    public internal(set) var state: SetupState
    private let lock: RuntimeLock
    var method: AttachMethod
    private var failPoints: FailPoints
    /// Whether this run started the server.
    public private(set) var startedServer = false
    var client: ControlClient { ControlClient(path: control) }

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

    func update(_ list: WritableKeyPath<SetupState, [SetupState.Use]>, _ index: Int,
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
        var use = SetupState.Use(priority: spec.swapPriority)
        use.size = spec.size
        use.algorithm = spec.algorithm?.rawValue
        use.memLimit = spec.memLimit
        use.options = spec.options
        use.writebackDevice = spec.writebackDevice
        use.tiering = spec.tiering
        use.tieringHighWatermark = spec.tieringHighWatermark
        state.swaps.append(use)
        try save()
        let index = state.swaps.count - 1
        try createAndAttach(spec, \.swaps, index)
        let block = state.swaps[index].blockDevice!
        try Tool.require("mkswap", [block])
        try failPoints.check(.mkswap)
        var arguments = ["-p", String(spec.swapPriority)]
        // zram hears of every freed swap slot; a block device hears only through discards,
        // so freed slots are discarded and give their memory back to the store.
        if !(spec.options ?? "").contains("discard") { arguments.append("--discard=pages") }
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
        // _netdev makes systemd's mount unit a remote one, ordered after remote-fs-pre.target,
        // which znbd.service is ordered before: at shutdown it is unmounted before the server stops.
        let options = ["discard", "_netdev"] + (spec.options.map { [$0] } ?? [])
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
        // zram's order: algorithm (with the hot-add) and its parameters, the limit and the
        // backing device, then disksize.
        let name = try client.hotAdd(algorithm: spec.algorithm)
        try update(list, index) { $0.device = name }
        if let level = spec.level { try set(name, "algorithm_params", "level=\(level)") }
        for (attribute, value) in spec.recompressionWrites { try set(name, attribute, value) }
        if let memLimit = spec.memLimit { try set(name, "mem_limit", String(memLimit)) }
        if let backing = spec.writebackDevice { try set(name, "backing_dev", backing) }
        for (attribute, value) in spec.tieringWrites { try set(name, attribute, value) }
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
}

/// `znbd: MESSAGE` on stderr.
public func note(_ message: String) {
    FileHandle.standardError.write(Data("znbd: \(message)\n".utf8))
}
