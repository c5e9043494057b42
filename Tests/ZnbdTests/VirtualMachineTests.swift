import Foundation
import Testing

@testable import ZnbdKit

/// Swap with the real kernel nbd driver and nbd-client: a Debian kernel boots under
/// qemu and swaps to `znbd serve` through a virtio-serial bridge, then runs this
/// znbd itself in the guest: `znbd swapon --attach nbd` with the server serving the
/// guest's own swap under memory pressure, `znbd swapoff`, then swap through znbd's
/// own FUSE export and a loop device (`znbd attach --attach fuse`) (Tests/vm/README.md).
/// It needs the Debian archive over the network and 2.5 to 5 minutes, so it runs in
/// CI (`CI=true`) or when asked for (`ZNBD_VM=1`); a plain `swift test` skips it
/// and says how to run it. `ZNBD_VM_SKIP=1` leaves it out even in CI.
@Suite(.enabled(if: VirtualMachineRun.wanted, VirtualMachineRun.skipMessage))
struct VirtualMachineTests {
    static let script = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("vm/run-with-server.sh").path

    @Test func swapUnderMemoryPressureThroughTheKernelNbdDriver() throws {
        let result = try ExternalCommand.run(
            "env", ["ZNBD=\(ZnbdServer.binary)", "bash", Self.script, "znbd"], timeout: VirtualMachineRun.timeout)
        let summary = result.stdout.split(separator: "\n").filter {
            $0.contains("VM-RESULT") || $0.contains("boot_time") || $0.contains("hog done")
                || $0.contains("mm_stat") || $0.contains("seed")
        }
        print(summary.joined(separator: "\n"))
        #expect(result.succeeded, "\(result)")
        #expect(result.stdout.contains("VM-RESULT: PASS"), "\(result)")
    }
}

/// Whether this run includes the VM test, and what a skipped run prints.
enum VirtualMachineRun {
    static var wanted: Bool {
        let environment = ProcessInfo.processInfo.environment
        return environment["ZNBD_VM_SKIP"] == nil && (Facility.inCI || environment["ZNBD_VM"] == "1")
    }

    /// `VM_TIMEOUT` (default 600 s) bounds the guest; the kernel download, the
    /// initramfs and the server get 600 s more.
    static var timeout: Double {
        (ProcessInfo.processInfo.environment["VM_TIMEOUT"].flatMap(Double.init) ?? 600) + 600
    }

    static let skipMessage: Comment = """
        the VM test boots Debian under qemu (network to the Debian archive, 2.5-5 minutes). \
        Run it with: ZNBD_VM=1 swift test --filter VirtualMachineTests (CI=true runs it; ZNBD_VM_SKIP=1 leaves it out)
        """
}
