import Foundation
import Testing

@testable import ZnbdKit

/// Puts an export under the kernel without the nbd driver: nbdfuse exposes it as
/// a file, losetup turns the file into a block device. Every step is undone by
/// `detach()`, which runs even when a test fails half way.
final class KernelAttachment: @unchecked Sendable {  // used from one test at a time
    let mountDirectory: String
    private var fuse: Process?
    private(set) var loopDevice: String?
    private var cleanups: [() -> Void] = []

    /// Why the kernel path cannot run here, or nil when it can (root, /dev/fuse, loop devices, tools).
    static var unavailableReason: String? {
        if getuid() != 0 { return "needs root for losetup, mkswap and mount" }
        if !FileManager.default.fileExists(atPath: "/dev/fuse") { return "no /dev/fuse" }
        if !FileManager.default.fileExists(atPath: "/dev/loop-control") { return "no loop device support" }
        return nil
    }

    init(server: ZnbdServer, export: String = "zram0") throws {
        mountDirectory = server.directory + "/fuse-\(export)/\(export)"
        try FileManager.default.createDirectory(atPath: mountDirectory, withIntermediateDirectories: true)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try ExternalCommand.which("nbdfuse") ?? { throw ToolMissing(tool: "nbdfuse") }())
        process.arguments = [mountDirectory, server.uri(export)]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        fuse = process
        cleanups.append { [mountDirectory] in
            _ = try? ExternalCommand.run("fusermount3", ["-u", mountDirectory], timeout: 30)
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
        }
        let file = mountDirectory + "/nbd"
        let deadline = Date().addingTimeInterval(20)
        while !FileManager.default.fileExists(atPath: file) {
            guard process.isRunning, Date() < deadline else {
                detach()
                throw CommandFailed(result: CommandResult(status: -1, stdout: "", stderr: "nbdfuse did not expose \(file)", timedOut: true))
            }
            usleep(20_000)
        }
        do {
            let loop = try ExternalCommand.require("losetup", ["-f", "--show", file]).stdout
                .trimmingCharacters(in: .whitespacesAndNewlines)
            loopDevice = loop
            cleanups.append { _ = try? ExternalCommand.run("losetup", ["-d", loop], timeout: 30) }
        } catch {
            detach()
            throw error
        }
    }

    deinit { detach() }

    /// Registers an undo step that runs before the loop device and FUSE mount go.
    func onDetach(_ body: @escaping () -> Void) { cleanups.append(body) }

    /// Undoes everything, newest first.
    func detach() {
        while let cleanup = cleanups.popLast() { cleanup() }
        fuse = nil
        loopDevice = nil
    }
}
