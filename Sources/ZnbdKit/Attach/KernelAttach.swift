#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// `znbd attach` and `znbd detach`: one device of a running server as a block device,
/// the way `/dev/zramN` is one. With the nbd driver that is `/dev/nbdN` through
/// nbd-client; without it, a loop device (direct I/O, so no uncompressed copy sits in
/// the page cache) over the device's file in the server's own FUSE directory.
public struct KernelAttach: Sendable {
    /// The server's runtime directory (its FUSE directory is `fuse` inside).
    public let paths: RuntimePaths
    /// The server's NBD socket, for nbd-client.
    public let unix: String

    public init(paths: RuntimePaths, unix: String? = nil) {
        self.paths = paths
        self.unix = unix ?? paths.nbdSocket
    }

    /// The device's file in the server's FUSE export.
    public func fuseFile(_ device: String) -> String { paths.fuseExportDirectory + "/" + device }

    /// Attaches `device` and returns the block device; an existing attachment is returned as is.
    /// - Throws: `Tool.Failure` naming what is missing (the device, the FUSE export, nbd-client...).
    public func attach(_ device: String, method: AttachMethod = .auto) throws -> String {
        guard Self.isValidName(device) else { throw Tool.Failure(description: "'\(device)' is not a device name") }
        if let existing = attachedBlockDevices(device).first { return existing }
        switch method == .auto ? Self.preferredMethod : method {
        case .nbd: return try attachWithNBDClient(device)
        case .fuse, .auto: return try attachWithLoop(device)
        }
    }

    /// Detaches every block device over `device`; returns them.
    /// - Throws: when `device` is not attached, or a tool fails.
    @discardableResult
    public func detach(_ device: String) throws -> [String] {
        let attached = attachedBlockDevices(device)
        guard !attached.isEmpty else { throw Tool.Failure(description: "\(device) is not attached") }
        for block in attached {
            if block.hasPrefix("/dev/nbd") {
                try Tool.require("nbd-client", ["-d", block], timeout: 60)
            } else {
                try Tool.require("losetup", ["-d", block], timeout: 60)
                try waitForLoopRelease(block, file: fuseFile(device))
            }
        }
        return attached
    }

    /// The block devices now over `device`: loop devices backed by its FUSE file, nbd
    /// devices whose backend is its export.
    public func attachedBlockDevices(_ device: String) -> [String] {
        let file = fuseFile(device)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/block")) ?? []
        return names.sorted().compactMap { name in
            if name.hasPrefix("loop"), Self.loopBackingFile(name) == file { return "/dev/\(name)" }
            if name.hasPrefix("nbd"), FileManager.default.fileExists(atPath: "/sys/block/\(name)/pid"),
                (try? String(contentsOfFile: "/sys/block/\(name)/backend", encoding: .utf8))?
                    .trimmingCharacters(in: .whitespacesAndNewlines) == device
            {
                return "/dev/\(name)"
            }
            return nil
        }
    }

    /// nbd when `modprobe nbd` works and /sys/block/nbd0 exists, else fuse.
    static var preferredMethod: AttachMethod {
        let loaded = (try? Tool.run("modprobe", ["nbd"], timeout: 30))?.succeeded ?? false
        return loaded && FileManager.default.fileExists(atPath: "/sys/block/nbd0") ? .nbd : .fuse
    }

    private func attachWithLoop(_ device: String) throws -> String {
        let file = fuseFile(device)
        guard FileManager.default.fileExists(atPath: file) else {
            if !DeviceSetup.isMountPoint(paths.fuseExportDirectory) {
                throw Tool.Failure(description: "no FUSE export at \(paths.fuseExportDirectory): is znbd serve running there without --no-fuse?")
            }
            throw Tool.Failure(description: "no device \(device) in \(paths.fuseExportDirectory)")
        }
        let loop = try Tool.require("losetup", ["-f", "--show", "--direct-io=on", file]).trimmingCharacters(in: .whitespacesAndNewlines)
        guard loop.hasPrefix("/dev/loop") else { throw Tool.Failure(description: "losetup printed '\(loop)'") }
        return loop
    }

    private func attachWithNBDClient(_ device: String) throws -> String {
        var lastError = "no free /dev/nbdN"
        for nbd in DeviceSetup.freeNBDDevices() {
            let output = try Tool.run("nbd-client", ["-unix", unix, "-N", device, "-b", "4096", nbd], timeout: 60)
            if output.succeeded { return nbd }
            lastError = output.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        throw Tool.Failure(description: "nbd-client could not attach \(device): \(lastError)")
    }

    /// The loop driver lets go of its file asynchronously after `losetup -d`: wait (10 s at most)
    /// so that the device is no longer open when detach returns.
    private func waitForLoopRelease(_ loop: String, file: String) throws {
        let name = (loop as NSString).lastPathComponent
        for _ in 0..<500 {
            if Self.loopBackingFile(name) != file { return }
            usleep(20_000)
        }
        throw Tool.Failure(description: "\(loop) still holds \(file) 10 s after losetup -d")
    }

    static func loopBackingFile(_ name: String) -> String? {
        (try? String(contentsOfFile: "/sys/block/\(name)/loop/backing_file", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A file name in the FUSE directory: no path separators, not `.` or `..`.
    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && !name.contains("/") && name != "." && name != ".." && name.utf8.count <= 255
    }
}
