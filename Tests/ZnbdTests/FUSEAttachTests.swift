import Foundation
import Testing

@testable import ZnbdKit

/// The kernel on top of znbd's own FUSE export: `znbd attach` makes a loop device
/// (direct I/O) over the device's file, `znbd detach` undoes it. Needs root, /dev/fuse,
/// loop devices and fio (skipped loudly without them, a failure in CI).
@Suite(.serialized, Facility.required(FUSEAttached.missing))
struct FUSEAttachTests {
    init() throws { try Facility.require(FUSEAttached.missing) }

    @Test func fioVerifiesRandomAndSequentialWrites() throws {
        try FUSEAttached.fioVerifies(ring: false)
    }

    @Test func ext4WithDiscardGivesMemoryBackOnTrim() throws {
        try FUSEAttached.ext4GivesMemoryBackOnTrim(ring: false)
    }

    @Test func filesFollowHotAddAndHotRemove() throws {
        let attached = try FUSEAttached(size: "64M")
        defer { attached.tearDown() }
        let server = attached.server
        let file = server.fuseDirectory + "/zram0"
        let attributes = try FileManager.default.attributesOfItem(atPath: file)
        #expect(attributes[.size] as? UInt64 == 64 << 20)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        #expect((attributes[.ownerAccountID] as? Int) == 0)

        // Attaching again names the same loop device; the device is busy while attached.
        #expect(try server.cli(["attach", "zram0"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines) == attached.loop)
        // So does a relative --control (the kernel reports the loop's backing file absolute).
        let controlDirectory = (server.control as NSString).deletingLastPathComponent
        let relative = try ExternalCommand.run(
            "env", ["-C", controlDirectory, ZnbdServer.binary, "attach", "zram0", "--control", (server.control as NSString).lastPathComponent])
        #expect(relative.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == attached.loop, "\(relative)")
        let busy = try server.cli(["hot-remove", "zram0"])
        #expect(!busy.succeeded && busy.stderr.contains("EBUSY"), "\(busy)")
        let truncate = try ExternalCommand.run("truncate", ["-s", "1M", file])
        #expect(!truncate.succeeded, "\(truncate)")
        #expect(try FileManager.default.attributesOfItem(atPath: file)[.size] as? UInt64 == 64 << 20)

        // A new device appears with its disksize; a removed one disappears.
        let added = try server.cli(["hot-add"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(added == "zram1", "hot-add printed \(added)")
        try ExternalCommand.require(ZnbdServer.binary, ["set", "zram1", "disksize", "32M", "--control", server.control])
        #expect(try FileManager.default.contentsOfDirectory(atPath: server.fuseDirectory).sorted() == ["zram0", "zram1"])
        #expect(try FileManager.default.attributesOfItem(atPath: server.fuseDirectory + "/zram1")[.size] as? UInt64 == 32 << 20)
        try ExternalCommand.require(ZnbdServer.binary, ["hot-remove", "zram1", "--control", server.control])
        #expect(!FileManager.default.fileExists(atPath: server.fuseDirectory + "/zram1"))
        let missing = try server.cli(["attach", "zram1"])
        #expect(!missing.succeeded && missing.stderr.contains("no device zram1"), "\(missing)")

        try attached.detachAndExpectNothingLeft()
        try ExternalCommand.require(ZnbdServer.binary, ["hot-remove", "zram0", "--control", server.control])
        server.stop()
        #expect(!DeviceSetup.isMountPoint(server.fuseDirectory), "the FUSE export outlived the server")
    }
}

extension FUSEAttachTests {
    /// A backing device in znbd's own FUSE export (its file, or a loop device over it)
    /// would have the server wait for itself on every written-back read: refused.
    @Test func aBackingDeviceInTheOwnExportIsRefused() throws {
        let attached = try FUSEAttached(size: "64M")
        defer { attached.tearDown() }
        let server = attached.server
        let added = try server.cli(["hot-add"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(added == "zram1", "hot-add printed \(added)")
        for backing in [attached.loop, server.fuseDirectory + "/zram0"] {
            let refused = try server.cli(["set", "zram1", "backing_dev", backing])
            #expect(!refused.succeeded && refused.stderr.contains("EINVAL") && refused.stderr.contains("own FUSE export"), "\(refused)")
        }
        #expect(try server.cli(["get", "zram1", "backing_dev"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "none")
        try ExternalCommand.require(ZnbdServer.binary, ["hot-remove", "zram1", "--control", server.control])
        try attached.detachAndExpectNothingLeft()
    }

    /// The file itself, without a loop device: the edges of the device and every fallocate
    /// mode answer the errno a fixed-size file should, and the server lives on.
    @Test func requestsAtTheEdgesAnswerErrnos() throws {
        try Self.requestsAtTheEdgesAnswerErrnos(ring: false)
    }

    static func requestsAtTheEdgesAnswerErrnos(ring: Bool) throws {
        let server = try ZnbdServer(["--size", "8M", "--fuse-ring", ring ? "on" : "off"], fuse: true)
        defer { server.stop() }
        let file = server.fuseDirectory + "/zram0"
        let deadline = Date().addingTimeInterval(20)
        while !FileManager.default.fileExists(atPath: file) && Date() < deadline { usleep(10_000) }
        let scratch = server.directory + "/scratch"
        try ExternalCommand.require("bash", ["-c", """
            set -e
            head -c 1M /dev/urandom > \(scratch)
            dd if=\(scratch) of=\(file) bs=64k conv=notrunc oflag=direct status=none
            cmp -n 1048576 \(scratch) \(file)
            """])
        func shell(_ script: String) throws -> CommandResult { try ExternalCommand.run("bash", ["-c", script]) }

        let pastEnd = try shell("dd if=/dev/zero of=\(file) bs=4096 seek=2048 count=1 conv=notrunc oflag=direct status=none")
        #expect(!pastEnd.succeeded && pastEnd.stderr.contains("No space left"), "write at the end: \(pastEnd)")
        // A write across the end stores what fits (a short write); dd's retry of the rest is ENOSPC.
        let straddling = try shell("dd if=\(scratch) of=\(file) bs=8192 seek=8384512 count=1 conv=notrunc oflag=direct,seek_bytes 2>&1")
        #expect(straddling.stdout.contains("No space left") && straddling.stdout.contains("4096 bytes"), "write across the end: \(straddling)")
        let tail = try shell("cmp -n 4096 -i 0:8384512 \(scratch) \(file)")
        #expect(tail.succeeded, "the part before the end was stored: \(tail)")
        let atEnd = try shell("dd if=\(file) bs=4096 skip=2048 count=1 iflag=direct status=none | wc -c")
        #expect(atEnd.succeeded && atEnd.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "0", "read at the end: \(atEnd)")

        let allocate = try shell("fallocate -o 0 -l 4096 \(file)")
        #expect(!allocate.succeeded && allocate.stderr.contains("not supported"), "plain fallocate: \(allocate)")
        let collapse = try shell("fallocate -c -o 0 -l 4096 \(file)")
        #expect(!collapse.succeeded, "collapse-range: \(collapse)")
        try ExternalCommand.require("bash", ["-c", """
            set -e
            fallocate -p -o 0 -l 512k \(file)
            cmp -n 524288 /dev/zero \(file)
            fallocate -z -o 512k -l 256k \(file)
            cmp -n 262144 -i 0:524288 /dev/zero \(file)
            cmp -n 262144 -i 786432:786432 \(scratch) \(file)
            fallocate -p -o 7M -l 16M \(file)
            truncate -s 8M \(file)
            """])
        let shrink = try shell("truncate -s 4M \(file)")
        #expect(!shrink.succeeded && shrink.stderr.contains("not permitted"), "truncate: \(shrink)")
        let create = try shell("touch \(server.fuseDirectory)/zram9")
        #expect(!create.succeeded, "creating a file: \(create)")
        #expect(server.isRunning)
        let stat = try server.cli(["get", "zram0", "io_stat"]).stdout.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        #expect(stat.count == 4 && stat[3] >= 128, "punch-holes freed pages: io_stat \(stat)")
    }
}

/// A `znbd serve` with its FUSE export and `zram0` attached through `znbd attach`.
/// `tearDown()` undoes everything, newest first, even when a test failed half way.
final class FUSEAttached: @unchecked Sendable {  // used from one test at a time
    let server: ZnbdServer
    let loop: String
    private var cleanups: [() -> Void] = []

    /// What the kernel path lacks here (root, /dev/fuse, loop devices, fio), or nil.
    static var missing: String? {
        Facility.kernel ?? (ExternalCommand.which("fio") == nil ? "fio is not installed" : nil)
    }

    /// The fuse module's switch for FUSE over io_uring (Linux 6.14+).
    static let ringSwitch = "/sys/module/fuse/parameters/enable_uring"

    /// What FUSE over io_uring lacks here (the fuse module's enable_uring switch), or nil.
    static var ringMissing: String? {
        missing ?? (FileManager.default.fileExists(atPath: ringSwitch)
            ? nil : "this kernel has no FUSE over io_uring (Linux 6.14+, CONFIG_FUSE_IO_URING)")
    }

    init(size: String, ring: Bool = false) throws {
        server = try ZnbdServer(["--size", size, "--fuse-ring", ring ? "on" : "off"], fuse: true)
        let deadline = Date().addingTimeInterval(20)
        while !FileManager.default.fileExists(atPath: server.fuseDirectory + "/zram0") {
            guard Date() < deadline else {
                let log = server.logText
                server.stop()
                throw ServerDidNotStart(log: "no FUSE export:\n" + log)
            }
            usleep(10_000)
        }
        let result = try server.cli(["attach", "zram0", "--attach", "fuse"])
        let printed = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        guard result.succeeded, printed.hasPrefix("/dev/loop") else {
            server.stop()
            throw CommandFailed(result: result)
        }
        loop = printed
        cleanups.append { [server, loop] in
            _ = try? server.cli(["detach", "zram0"])
            if KernelAttach.loopBackingFile((loop as NSString).lastPathComponent) == server.fuseDirectory + "/zram0" {
                _ = try? ExternalCommand.run("losetup", ["-d", loop], timeout: 30)
            }
        }
        #expect(Self.directIO(loop) == true, "\(loop) is not in direct-I/O mode")
    }

    deinit { tearDown() }

    /// Registers an undo step that runs before the device is detached.
    func onTearDown(_ body: @escaping () -> Void) { cleanups.append(body) }

    func tearDown() {
        while let cleanup = cleanups.popLast() { cleanup() }
        server.stop()
    }

    /// `znbd detach zram0`, then: no loop device over the file, the device no longer open
    /// (hot-remove would succeed), the FUSE export still mounted while the server runs.
    func detachAndExpectNothingLeft(sourceLocation: SourceLocation = #_sourceLocation) throws {
        let detached = try server.cli(["detach", "zram0"])
        #expect(detached.succeeded && detached.stdout.contains(loop), "\(detached)", sourceLocation: sourceLocation)
        let file = server.fuseDirectory + "/zram0"
        let loops = ((try? FileManager.default.contentsOfDirectory(atPath: "/sys/block")) ?? [])
            .filter { $0.hasPrefix("loop") && KernelAttach.loopBackingFile($0) == file }
        #expect(loops.isEmpty, "loop devices left over \(file): \(loops)", sourceLocation: sourceLocation)
        let status = try server.cli(["status"]).stdout
        #expect(!status.contains("loop"), "status still shows a loop device:\n\(status)", sourceLocation: sourceLocation)
        #expect(DeviceSetup.isMountPoint(server.fuseDirectory), "the FUSE export went away with the loop device", sourceLocation: sourceLocation)
    }

    /// CPU ticks of the server's threads named `znbd-ring-*` and `znbd-fuse-*`.
    func fuseThreadTicks() -> (ring: Int, classic: Int) {
        var ticks = (ring: 0, classic: 0)
        let tasks = "/proc/\(server.pid)/task"
        for task in (try? FileManager.default.contentsOfDirectory(atPath: tasks)) ?? [] {
            guard let name = try? String(contentsOfFile: "\(tasks)/\(task)/comm", encoding: .utf8),
                let stat = try? String(contentsOfFile: "\(tasks)/\(task)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            let used = (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)  // utime + stime
            if name.hasPrefix("znbd-ring-") { ticks.ring += used } else if name.hasPrefix("znbd-fuse-") { ticks.classic += used }
        }
        return ticks
    }

    /// The requests went where the test asked: the ring queues did the work over io_uring,
    /// and no ring thread exists over /dev/fuse.
    func expectServed(overRing ring: Bool, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let ticks = fuseThreadTicks()
        if ring {
            #expect(ticks.ring > ticks.classic, "ring threads \(ticks.ring) ticks, /dev/fuse workers \(ticks.classic)", sourceLocation: sourceLocation)
        } else {
            #expect(ticks.ring == 0 && ticks.classic > 0, "ring threads \(ticks.ring) ticks, /dev/fuse workers \(ticks.classic)", sourceLocation: sourceLocation)
        }
    }

    func memUsedTotal() throws -> Int {
        let fields = try server.cli(["get", "zram0", "mm_stat"]).stdout.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        try #require(fields.count == 9)
        return fields[2]
    }

    func ioStat() throws -> (failedReads: Int, failedWrites: Int, invalid: Int, notifyFree: Int) {
        let fields = try server.cli(["get", "zram0", "io_stat"]).stdout.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        try #require(fields.count == 4)
        return (fields[0], fields[1], fields[2], fields[3])
    }

    static func directIO(_ loop: String) -> Bool? {
        let name = (loop as NSString).lastPathComponent
        return (try? String(contentsOfFile: "/sys/block/\(name)/loop/dio", encoding: .utf8))
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) == "1" }
    }
}

extension FUSEAttached {
    /// fio writes and verifies random 4 KiB, sequential 1 MiB and mixed 64 KiB I/O.
    static func fioVerifies(ring: Bool) throws {
        let attached = try FUSEAttached(size: "256M", ring: ring)
        defer { attached.tearDown() }
        let scratch = attached.server.directory + "/fio"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        let common = "--filename=\(attached.loop) --ioengine=libaio --direct=1 --verify=crc32c --do_verify=1 --verify_fatal=1"
            + " --buffer_compress_percentage=60 --refill_buffers --randseed=13 --output-format=terse"
        // fio runs in a scratch directory so that no state file lands in the working directory.
        try ExternalCommand.require("bash", ["-c", """
            set -e
            cd \(scratch)
            fio --name=random4k --rw=randwrite --bs=4k --iodepth=32 --size=96M \(common)
            fio --name=sequential1m --rw=write --bs=1M --iodepth=8 --size=192M \(common)
            fio --name=mixed --rw=randrw --bs=64k --iodepth=16 --size=64M --offset=128M \(common)
            """], timeout: 600)
        let stat = try attached.ioStat()
        #expect(stat.failedReads == 0 && stat.failedWrites == 0, "io_stat \(stat)")
        try attached.expectServed(overRing: ring)
        try attached.detachAndExpectNothingLeft()
    }

    /// ext4 mounted with discard: files verify, and rm + fstrim give the memory back.
    static func ext4GivesMemoryBackOnTrim(ring: Bool) throws {
        let attached = try FUSEAttached(size: "256M", ring: ring)
        defer { attached.tearDown() }
        let mountPoint = attached.server.directory + "/mnt"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        try ExternalCommand.require("mkfs.ext4", ["-q", "-E", "nodiscard", attached.loop], timeout: 120)
        try ExternalCommand.require("mount", ["-o", "discard", attached.loop, mountPoint])
        attached.onTearDown { _ = try? ExternalCommand.run("umount", ["-l", mountPoint], timeout: 60) }
        let status = try attached.server.cli(["status"]).stdout
        #expect(status.contains(mountPoint), "status does not show zram0 mounted through its loop device:\n\(status)")

        try ScratchFiles.writeAndVerify(in: mountPoint, label: "FUSE ext4")
        let before = try attached.memUsedTotal()
        let freedBefore = try attached.ioStat().notifyFree
        #expect(before > 32 << 20, "mem_used_total \(before)")

        try ExternalCommand.require("bash", ["-c", "rm \(mountPoint)/noise* \(mountPoint)/text[1-6] && sync"])
        try ExternalCommand.require("fstrim", ["-v", mountPoint], timeout: 120)
        let after = try attached.memUsedTotal()
        let freedAfter = try attached.ioStat().notifyFree
        print("FUSE ext4: mem_used_total \(before) -> \(after), notify_free \(freedBefore) -> \(freedAfter) after rm + fstrim")
        #expect(after < before / 2, "punch-holes did not reach the device: mem_used_total \(before) -> \(after)")
        #expect(freedAfter > freedBefore, "notify_free \(freedBefore) -> \(freedAfter)")
        try ScratchFiles.verify(in: mountPoint, allowingMissing: true)
        try ExternalCommand.require("umount", [mountPoint], timeout: 60)
        try ExternalCommand.require("e2fsck", ["-fn", attached.loop], timeout: 120)
        try attached.expectServed(overRing: ring)
        try attached.detachAndExpectNothingLeft()
    }
}

/// The same as `FUSEAttachTests`, with requests over FUSE's io_uring queues
/// (`--fuse-ring on`, which turns the fuse module's enable_uring on).
@Suite(.serialized, Facility.required(FUSEAttached.ringMissing))
struct FUSERingAttachTests {
    init() throws { try Facility.require(FUSEAttached.ringMissing) }

    @Test func fioVerifiesRandomAndSequentialWrites() throws {
        try Self.withRingSwitchAsFound { try FUSEAttached.fioVerifies(ring: true) }
    }

    @Test func ext4WithDiscardGivesMemoryBackOnTrim() throws {
        try Self.withRingSwitchAsFound { try FUSEAttached.ext4GivesMemoryBackOnTrim(ring: true) }
    }

    /// Every request but READ and WRITE goes through libfuse from the ring queues.
    @Test func requestsAtTheEdgesAnswerErrnos() throws {
        try Self.withRingSwitchAsFound { try FUSEAttachTests.requestsAtTheEdgesAnswerErrnos(ring: true) }
    }

    /// The switch is the host's, not the test's: `body` (whose server has stopped when it
    /// returns) may turn it on, and it is put back as it was.
    static func withRingSwitchAsFound(_ body: () throws -> Void) throws {
        let path = FUSEAttached.ringSwitch
        let before = try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        defer {
            do { try before.write(toFile: path, atomically: false, encoding: .utf8) } catch {
                Issue.record("could not put \(path) back to \(before): \(error)")
            }
        }
        try body()
    }
}
