import ArgumentParser
import Foundation
import SwiftZram
import ZnbdKit

/// `znbd mount`: a tmpfs-like compressed scratch file system.
struct MountCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mount",
        abstract: "A compressed scratch file system: a device of SIZE, mkfs, mount -o discard.",
        discussion: """
            Starts or reuses the server like `znbd swapon`, hot-adds a device, attaches it, makes \
            the file system (without a discard pass: the device starts empty) and mounts it with \
            -o discard, so deleted files give their memory back. DIR is created if missing (and \
            removed again by `znbd umount`); a directory that holds files is refused unless --force. With --config, every section with a mount-point is \
            mounted there with its fs-type, size, algorithm, mem-limit and options.
            """)

    @Argument(help: "Where to mount it.")
    var directory: String?

    @Option(help: "The device's size (K/M/G/T).")
    var size: SizeArgument?

    @Option(help: "Compression algorithm: lzo, lz4, lz4hc, zstd.")
    var algorithm: CompressionAlgorithm?

    @Option(help: "File system type (mkfs.TYPE must exist).")
    var fs: String = "ext4"

    @Option(help: "More mount options, after discard.")
    var options: String?

    @Option(name: .customLong("mem-limit"), help: "Cap on the device's mem_used_total.")
    var memLimit: SizeArgument?

    @Option(help: "Mount the config file's sections that have a mount-point.")
    var config: String?

    @Flag(help: "Mount over a directory that is not empty (its files stay hidden until umount).")
    var force = false

    @OptionGroup var setup: SetupOptions

    func validate() throws {
        if config == nil {
            guard directory != nil else { throw ValidationError("give the directory to mount on (or --config FILE)") }
            guard let size, size.bytes >= 1 << 20 else { throw ValidationError("--size is required (at least 1M)") }
        } else if directory != nil || size != nil {
            throw ValidationError("--config names the mount points and sizes: drop DIR and --size")
        }
        guard !fs.isEmpty, fs != "swap", fs.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." }) else {
            throw ValidationError("--fs '\(fs)' is not a file system type")
        }
    }

    func run() throws {
        var mounts: [(DeviceSpec, String)] = []
        if let config {
            mounts = try ZramConfig.load(path: config).specs(ramBytes: MachineMemory.totalBytes, file: config)
                .compactMap { entry in entry.spec.mountPoint.map { (entry.spec, $0) } }
            guard !mounts.isEmpty else { throw Tool.Failure(description: "\(config) defines no device with a mount-point") }
        } else if let directory, let size {
            mounts = [(DeviceSpec(size: size.bytes / 4096 * 4096, algorithm: algorithm, memLimit: memLimit?.bytes,
                                  fsType: fs, options: options), directory)]
        }
        let setup = try setup.makeSetup()
        for (_, directory) in mounts {
            let path = absolutePath(directory)
            if let existing = setup.state.mounts.first(where: { $0.mountPoint == path }) {
                throw Tool.Failure(description: "\(path) is already a znbd mount (\(existing.device ?? "?")); `znbd umount \(path)` first")
            }
            if DeviceSetup.isMountPoint(path) { throw Tool.Failure(description: "something is already mounted on \(path)") }
            try DeviceSetup.checkMountPointIsEmpty(path, force: force)
        }
        let start = setup.state.mounts.count
        do {
            try setup.ensureServer()
            for (spec, directory) in mounts {
                let path = absolutePath(directory)
                let use = try setup.addMount(spec, at: path)
                print("\(use.device ?? "?"): \(HumanSize.format(spec.size)) \(spec.algorithm?.rawValue ?? "lz4"), \(spec.fsType) on \(use.blockDevice ?? "?") mounted at \(path)")
            }
        } catch {
            if setup.state.mounts.count > start || setup.startedServer {
                note("mount failed: \(error); undoing what was set up")
                do { try setup.rollBack(\.mounts, from: start) } catch let undo {
                    note("could not undo everything (\(undo)); `znbd umount` retries")
                }
            }
            throw error
        }
    }
}

/// `znbd umount DIR`: undoes `znbd mount`.
struct UmountCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "umount",
        abstract: "Undo `znbd mount`: umount, detach, hot-remove, and stop the server if znbd started it and nothing else uses it.")

    @Argument(help: "Mount points made by `znbd mount`.")
    var directories: [String] = []

    @Flag(help: "Every mount made by `znbd mount`.")
    var all = false

    @Option(help: "The config file's mount points.")
    var config: String?

    @OptionGroup var setup: SetupOptions

    func validate() throws {
        if directories.isEmpty && !all && config == nil { throw ValidationError("give a directory, --all or --config FILE") }
    }

    func run() throws {
        let setup = try setup.makeSetup()
        var targets = directories.map(absolutePath)
        if let config {
            targets += try ZramConfig.load(path: config).devices.compactMap(\.mountPoint).map(absolutePath)
        }
        if all { targets += setup.state.mounts.compactMap(\.mountPoint) }
        var firstError: Error?
        for target in targets {
            guard let index = setup.state.mounts.firstIndex(where: { $0.mountPoint == target }) else {
                if !all {
                    firstError = firstError ?? Tool.Failure(description: "\(target) is not mounted by znbd (see \(setup.paths.stateFile))")
                }
                continue
            }
            let device = setup.state.mounts[index].device
            do {
                try setup.teardown(\.mounts, index)
                print("unmounted \(target)\(device.map { ", removed \($0)" } ?? "")")
            } catch {
                firstError = firstError ?? error
            }
        }
        do { try setup.stopServerIfUnused() } catch { firstError = firstError ?? error }
        if let firstError { throw firstError }
    }
}

/// An absolute, normalised path (symbolic links resolved when the path exists).
func absolutePath(_ path: String) -> String {
    let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    let url = URL(fileURLWithPath: absolute).standardizedFileURL
    return FileManager.default.fileExists(atPath: url.path) ? url.resolvingSymlinksInPath().path : url.path
}
