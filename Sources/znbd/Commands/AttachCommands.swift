import ArgumentParser
import Foundation
import ZnbdKit

/// Where the server lives, for attach and detach.
struct AttachOptions: ParsableArguments {
    @Option(name: .customLong("runtime-dir"), help: "The server's runtime directory (default $ZNBD_RUNTIME_DIR or /run/znbd).")
    var runtimeDirectory: String?

    @Option(help: "The server's control socket; its directory is the runtime directory.")
    var control: String?

    @Option(help: "The server's NBD socket, for nbd-client (default RUNTIME-DIR/nbd.sock).")
    var unix: String?

    var attach: KernelAttach {
        let paths = control.map(RuntimePaths.containing(controlSocket:))
            ?? runtimeDirectory.map(RuntimePaths.init(directory:)) ?? .fromEnvironment
        return KernelAttach(paths: paths, unix: unix)
    }
}

/// `znbd attach DEVICE`: the device as a block device, printed on stdout.
struct AttachCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attach",
        abstract: "Make a block device of a running server's device and print it.",
        discussion: """
            With the nbd driver (`modprobe nbd` works): nbd-client -unix SOCK -N DEVICE -b 4096 /dev/nbdN. \
            Otherwise: losetup --direct-io=on over RUNTIME-DIR/fuse/DEVICE, the device's file in the \
            server's own FUSE export. Attaching an attached device prints its block device again.
            """)

    @Argument(help: "The device (zram0).")
    var device: String

    @Option(help: "auto (nbd when the driver loads, else fuse), nbd or fuse.")
    var attach: AttachMethod = .auto

    @OptionGroup var options: AttachOptions

    func run() throws {
        print(try options.attach.attach(device, method: attach))
    }
}

/// `znbd detach DEVICE`: undoes `znbd attach`.
struct DetachCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "detach",
        abstract: "Detach the block devices `znbd attach` made of a device.")

    @Argument(help: "The device (zram0).")
    var device: String

    @OptionGroup var options: AttachOptions

    func run() throws {
        for block in try options.attach.detach(device) { print(block) }
    }
}
