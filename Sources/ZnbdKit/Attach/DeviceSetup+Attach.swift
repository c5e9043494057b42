#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Putting a device under the kernel: nbd-client on /dev/nbdN, or a loop device over the
/// device's file in the server's own FUSE export (nbdfuse + losetup when it has none).
extension DeviceSetup {
    /// `auto` becomes nbd when `modprobe nbd` succeeds and /dev/nbd0 exists, else fuse (said once on stderr).
    func resolvedMethod() throws -> AttachMethod {
        switch method {
        case .nbd, .fuse: return method
        case .auto:
            let loaded = (try? Tool.run("modprobe", ["nbd"], timeout: 30))?.succeeded ?? false
            if loaded && FileManager.default.fileExists(atPath: "/sys/block/nbd0") {
                method = .nbd
            } else {
                method = .fuse
                note("the kernel has no nbd driver (modprobe nbd failed): attaching through a loop device over znbd's FUSE export instead (nbdfuse + loop if the server has none)")
            }
            return method
        }
    }

    func attachWithNBDClient(_ name: String, _ list: WritableKeyPath<SetupState, [SetupState.Use]>, _ index: Int) throws {
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

    func attachWithFUSE(_ name: String, _ list: WritableKeyPath<SetupState, [SetupState.Use]>, _ index: Int) throws {
        // The server's own FUSE export, as `znbd attach`: the loop device is all there is to undo.
        let native = KernelAttach(paths: RuntimePaths.containing(controlSocket: control), unix: unix)
        if FileManager.default.fileExists(atPath: native.fuseFile(name)) {
            try update(list, index) { $0.method = AttachMethod.fuse.rawValue }
            let loop = try native.attach(name, method: .fuse)
            try update(list, index) { $0.loopDevice = loop }
            return
        }
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
        // Direct I/O: without it every page the kernel writes stays, uncompressed, in the
        // page cache of the nbdfuse file as well as compressed in the device.
        let loop = try Tool.require("losetup", ["-f", "--show", "--direct-io=on", file])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard loop.hasPrefix("/dev/") else { throw Tool.Failure(description: "losetup printed '\(loop)'") }
        try update(list, index) { $0.loopDevice = loop }
    }
}
