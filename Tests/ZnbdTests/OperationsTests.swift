import Foundation
import Testing

@testable import ZnbdKit

/// `znbd swapon/swapoff` and `znbd mount/umount` end to end on this kernel (nbdfuse +
/// loop when there is no nbd driver), each in its own runtime directory, including the
/// rollback of a setup that fails half way (`ZNBD_FAIL_AFTER`).
@Suite(.serialized, Facility.required(Facility.kernel))
struct OperationsTests {
    init() throws { try Facility.require(Facility.kernel) }

    @Test(.timeLimit(.minutes(5)))
    func swaponAndSwapoffLeaveNothingBehind() throws {
        let sandbox = try OperationsSandbox()
        defer { sandbox.cleanUp() }
        let on = try sandbox.znbd(["swapon", "--size", "128M", "--devices", "2"])
        #expect(on.succeeded, "\(on)")
        if !FileManager.default.fileExists(atPath: "/sys/block/nbd0") {
            #expect(on.stderr.contains("nbdfuse + loop"), "the fallback is said: \(on.stderr)")
        }
        if !FileManager.default.fileExists(atPath: "/sys/block/nbd0") {
            let backing = sandbox.loopDevices.compactMap { KernelAttach.loopBackingFile(($0 as NSString).lastPathComponent) }
            #expect(backing.count == 2 && backing.allSatisfy { $0.hasPrefix(sandbox.runtime + "/fuse/") },
                "swapon attaches through the server's own FUSE export: \(backing)")
        }
        let areas = sandbox.swapAreas
        #expect(areas.count == 2, "\(areas)")
        #expect(areas.allSatisfy { $0.priority == 100 }, "\(areas)")
        let pid = try #require(try sandbox.daemonPid())
        #expect(OperationsSandbox.isAlive(pid))

        // zramctl's view: both devices back active swap.
        let status = try sandbox.znbd(["status", "--control", sandbox.control])
        let rows = status.stdout.split(separator: "\n").dropFirst().map { $0.split(separator: " ").map(String.init) }
        #expect(rows.count == 2, "\(status)")
        #expect(rows.allSatisfy { $0.last == "[SWAP]" && $0[2] == "64M" }, "\(status)")
        print("znbd status after znbd swapon:\n\(status.stdout)")

        // Twice: nothing changes.
        let again = try sandbox.znbd(["swapon", "--size", "128M", "--devices", "2"])
        #expect(again.succeeded && again.stderr.contains("already on"), "\(again)")
        #expect(sandbox.swapAreas.map(\.device) == areas.map(\.device))
        let devices = try sandbox.znbd(["status", "--control", sandbox.control, "--noheadings", "--output", "name"])
        #expect(devices.stdout == "zram0\nzram1\n", "\(devices)")

        // Again with other arguments: an error that says what differs, and nothing changes.
        let other = try sandbox.znbd(["swapon", "--size", "256M", "--devices", "2", "--priority", "7"])
        #expect(other.status != 0, "\(other)")
        #expect(other.stderr.contains("size: 64M set up, 128M asked") && other.stderr.contains("priority: 100 set up, 7 asked"), "\(other)")
        let fewer = try sandbox.znbd(["swapon", "--size", "128M", "--devices", "1"])
        #expect(fewer.status != 0 && fewer.stderr.contains("devices: 2 set up, 1 asked"), "\(fewer)")
        #expect(sandbox.swapAreas.map(\.device) == areas.map(\.device) && sandbox.swapAreas.allSatisfy { $0.priority == 100 })

        // Loop devices over nbdfuse files use direct I/O: no second, uncompressed copy in the page cache.
        for area in areas where area.device.hasPrefix("/dev/loop") {
            let name = (area.device as NSString).lastPathComponent
            let dio = try String(contentsOfFile: "/sys/block/\(name)/loop/dio", encoding: .utf8)
            #expect(dio.trimmingCharacters(in: .whitespacesAndNewlines) == "1", "\(area.device) has no direct I/O")
        }

        let off = try sandbox.znbd(["swapoff"])
        #expect(off.succeeded && off.stdout.contains("zram0, zram1"), "\(off)")
        sandbox.expectNothingLeft("after swapoff")
        #expect(!OperationsSandbox.isAlive(pid), "the server swapon started has stopped")
        let nothing = try sandbox.znbd(["swapoff"])
        #expect(nothing.succeeded && nothing.stderr.contains("no swap"), "\(nothing)")
    }

    @Test(.timeLimit(.minutes(5)))
    func swaponReusesARunningServerAndLeavesItRunning() throws {
        let server = try ZnbdServer(["--size", "16M"])
        defer { server.stop() }
        let sandbox = try OperationsSandbox()
        defer { sandbox.cleanUp() }
        let on = try sandbox.znbd([
            "swapon", "--size", "64M", "--devices", "1", "--priority", "7", "--algorithm", "zstd",
            "--control", server.control, "--unix", server.socket,
        ])
        #expect(on.succeeded, "\(on)")
        #expect(!on.stderr.contains("started znbd serve"), "\(on)")
        #expect(try sandbox.daemonPid() == nil, "not ours to stop")
        #expect(sandbox.swapAreas.map(\.priority) == [7])
        let status = try server.cli(["status", "--noheadings", "--raw", "--output", "name,algorithm,disksize,mountpoint"])
        #expect(status.stdout == "zram0 lz4 16M \nzram1 zstd 64M [SWAP]\n", "\(status)")

        let off = try sandbox.znbd(["swapoff"])
        #expect(off.succeeded, "\(off)")
        sandbox.expectNothingLeft("after swapoff")
        #expect(server.isRunning)
        #expect(try server.cli(["status", "--noheadings", "--output", "name"]).stdout == "zram0\n")
    }

    @Test(.timeLimit(.minutes(5)), arguments: ["daemon", "hot-add", "attach", "mkswap", "mkswap:2", "swapon:2"])
    func aFailedSwaponIsRolledBack(step: String) throws {
        let sandbox = try OperationsSandbox()
        defer { sandbox.cleanUp() }
        let failed = try sandbox.znbd(["swapon", "--size", "64M", "--devices", "2"], environment: ["ZNBD_FAIL_AFTER": step])
        #expect(failed.status != 0, "\(failed)")
        #expect(failed.stderr.contains("injected failure after \(step.split(separator: ":")[0])"), "\(failed)")
        sandbox.expectNothingLeft("after a failure at \(step)")
        let log = (try? String(contentsOfFile: sandbox.runtime + "/znbd.log", encoding: .utf8)) ?? ""
        #expect(log.contains("stopped"), "the server started for it was stopped:\n\(log)")
    }

    @Test(.timeLimit(.minutes(5)), .enabled(if: !FileManager.default.fileExists(atPath: "/sys/block/nbd0"), "this kernel has nbd devices"))
    func forcingNBDWithoutTheDriverFailsCleanly() throws {
        let sandbox = try OperationsSandbox()
        defer { sandbox.cleanUp() }
        let failed = try sandbox.znbd(["swapon", "--size", "32M", "--devices", "1", "--attach", "nbd"])
        #expect(failed.status != 0 && failed.stderr.contains("nbd-client could not attach zram0"), "\(failed)")
        sandbox.expectNothingLeft("after a failed nbd attach")
    }

    @Test(.timeLimit(.minutes(5)))
    func scratchMountWritesReadsAndUnmountsClean() throws {
        let sandbox = try OperationsSandbox()
        defer { sandbox.cleanUp() }
        let directory = sandbox.directory + "/scratch"
        let mounted = try sandbox.znbd(["mount", "--size", "256M", "--algorithm", "zstd", directory])
        #expect(mounted.succeeded, "\(mounted)")
        #expect(mounted.stdout.contains("ext4") && mounted.stdout.contains(directory), "\(mounted)")
        let options = try ExternalCommand.require("findmnt", ["-n", "-o", "FSTYPE,OPTIONS", directory]).stdout
        #expect(options.hasPrefix("ext4") && options.contains("discard"), "\(options)")

        try ExternalCommand.require("bash", ["-c", """
            set -e
            cd \(directory)
            for i in 1 2 3 4; do
              yes "znbd scratch line $i" | head -c 16M > text$i
              head -c 4M /dev/urandom > noise$i
            done
            mkdir -p deep/er && cp text1 deep/er/copy
            sha256sum text* noise* deep/er/copy > ../sums
            sync
            """], timeout: 120)
        try ExternalCommand.require("bash", ["-c", "echo 3 > /proc/sys/vm/drop_caches"])
        try ExternalCommand.require("bash", ["-c", "cd \(directory) && sha256sum --quiet -c ../sums"], timeout: 120)

        let status = try sandbox.znbd(["status", "--control", sandbox.control, "--noheadings", "--raw", "--output", "name,algorithm,mountpoint"])
        #expect(status.stdout == "zram0 zstd \(directory)\n", "\(status)")

        let twice = try sandbox.znbd(["mount", "--size", "16M", directory])
        #expect(twice.status != 0 && twice.stderr.contains("already a znbd mount"), "\(twice)")

        let unmounted = try sandbox.znbd(["umount", directory])
        #expect(unmounted.succeeded, "\(unmounted)")
        #expect(!FileManager.default.fileExists(atPath: directory), "the directory znbd made is gone")
        sandbox.expectNothingLeft("after umount")
        let unknown = try sandbox.znbd(["umount", directory])
        #expect(unknown.status != 0 && unknown.stderr.contains("not mounted by znbd"), "\(unknown)")
    }

    @Test(.timeLimit(.minutes(5)))
    func mountingOverANonEmptyDirectoryNeedsForce() throws {
        let sandbox = try OperationsSandbox()
        defer { sandbox.cleanUp() }
        let directory = sandbox.directory + "/full"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try "keep me\n".write(toFile: directory + "/precious", atomically: true, encoding: .utf8)
        let refused = try sandbox.znbd(["mount", "--size", "16M", directory])
        #expect(refused.status != 0, "\(refused)")
        #expect(refused.stderr.contains("\(directory) is not empty") && refused.stderr.contains("--force"), "\(refused)")
        #expect(!DeviceSetup.isMountPoint(directory))
        sandbox.expectNothingLeft("after a refused mount")

        let forced = try sandbox.znbd(["mount", "--size", "16M", "--force", directory])
        #expect(forced.succeeded, "\(forced)")
        #expect(DeviceSetup.isMountPoint(directory))
        #expect(!FileManager.default.fileExists(atPath: directory + "/precious"), "hidden under the mount")
        // _netdev: systemd stops the mount before remote-fs-pre.target, so before znbd.service.
        let options = try ExternalCommand.require("findmnt", ["-m", "-n", "-o", "OPTIONS", directory]).stdout
        #expect(options.contains("_netdev") && options.contains("discard"), "\(options)")

        let unmounted = try sandbox.znbd(["umount", directory])
        #expect(unmounted.succeeded, "\(unmounted)")
        #expect(try String(contentsOfFile: directory + "/precious", encoding: .utf8) == "keep me\n", "a directory znbd did not make stays")
        sandbox.expectNothingLeft("after umount")
    }

    @Test(.timeLimit(.minutes(5)), arguments: ["attach", "mkfs", "mount"])
    func aFailedMountIsRolledBack(step: String) throws {
        let sandbox = try OperationsSandbox()
        defer { sandbox.cleanUp() }
        let directory = sandbox.directory + "/scratch"
        let failed = try sandbox.znbd(["mount", "--size", "32M", directory], environment: ["ZNBD_FAIL_AFTER": step])
        #expect(failed.status != 0 && failed.stderr.contains("injected failure after \(step)"), "\(failed)")
        #expect(!FileManager.default.fileExists(atPath: directory))
        sandbox.expectNothingLeft("after a failure at \(step)")
    }

    /// One server for swap and a scratch mount: it stops with the last of them, and a
    /// config file sets sizes, algorithms, priorities and mount points.
    @Test(.timeLimit(.minutes(5)))
    func configDrivesSwapAndMountOnOneServer() throws {
        let sandbox = try OperationsSandbox()
        defer { sandbox.cleanUp() }
        let scratch = sandbox.directory + "/var-tmp"
        let config = sandbox.directory + "/znbd.conf"
        try """
            [zram0]
            zram-size = min(ram / 64, 48)
            compression-algorithm = lz4hc
            swap-priority = 42

            [zram1]
            zram-size = 64
            mount-point = \(scratch)
            mem-limit = 32M
            """.write(toFile: config, atomically: true, encoding: .utf8)

        let swap = try sandbox.znbd(["swapon", "--config", config])
        #expect(swap.succeeded, "\(swap)")
        #expect(sandbox.swapAreas.map(\.priority) == [42], "\(sandbox.swapAreas)")
        let pid = try #require(try sandbox.daemonPid())

        let mount = try sandbox.znbd(["mount", "--config", config])
        #expect(mount.succeeded, "\(mount)")
        #expect(!mount.stderr.contains("started znbd serve"), "reuses the server: \(mount)")
        try ExternalCommand.require("bash", ["-c", "echo hello > \(scratch)/greeting && sync"])

        let status = try sandbox.znbd(["status", "--control", sandbox.control, "--bytes", "--noheadings", "--raw",
                                       "--output", "name,algorithm,disksize,mem-limit,mountpoint"])
        #expect(status.stdout == "zram0 lz4hc 50331648 0 [SWAP]\nzram1 lz4 67108864 33554432 \(scratch)\n", "\(status)")

        #expect(try sandbox.znbd(["swapoff"]).succeeded)
        #expect(OperationsSandbox.isAlive(pid), "the mount still uses the server")
        #expect(try sandbox.znbd(["umount", "--config", config]).succeeded)
        #expect(!OperationsSandbox.isAlive(pid), "the last use is gone, and the server with it")
        sandbox.expectNothingLeft("after swapoff and umount")
    }
}
