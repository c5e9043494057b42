import ArgumentParser
import Foundation
import ZnbdKit

/// Where the server and the setup state live, shared by swapon/swapoff/mount/umount.
struct SetupOptions: ParsableArguments {
    @Option(name: .customLong("runtime-dir"),
            help: "Directory for the sockets, pidfile, log, state.json and nbdfuse mounts (default $ZNBD_RUNTIME_DIR or /run/znbd).")
    var runtimeDirectory: String?

    @Option(help: "The server's control socket (default RUNTIME-DIR/control.sock).")
    var control: String?

    @Option(help: "The server's NBD socket (default RUNTIME-DIR/nbd.sock).")
    var unix: String?

    @Option(help: "How exports reach the kernel: auto (nbd-client if `modprobe nbd` works, else nbdfuse + loop), nbd, fuse.")
    var attach: AttachMethod = .auto

    var paths: RuntimePaths {
        runtimeDirectory.map(RuntimePaths.init(directory:)) ?? .fromEnvironment
    }

    /// The setup, with the fail points `ZNBD_FAIL_AFTER` asks for (a test hook).
    func makeSetup() throws -> DeviceSetup {
        let failPoints = try FailPoints(specification: ProcessInfo.processInfo.environment[FailPoints.environmentVariable])
        return try DeviceSetup(paths: paths, control: control, unix: unix, attach: attach, failPoints: failPoints)
    }
}

extension AttachMethod: ExpressibleByArgument {}
