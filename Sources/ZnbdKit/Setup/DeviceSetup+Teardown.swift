#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Taking a recorded use down again, newest step first.
extension DeviceSetup {
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
            // Only our loop device: the one still backed by our nbdfuse file, or by the device's
            // file in the server's FUSE export.
            let ours = use.fuseMountPoint.map { $0 + "/nbd" }
                ?? use.device.map { KernelAttach(paths: RuntimePaths.containing(controlSocket: control)).fuseFile($0) }
            if let file = Self.loopBackingFile(loop), file == ours {
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
}
