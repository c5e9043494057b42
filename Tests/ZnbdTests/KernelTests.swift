import Foundation
import Testing

@testable import ZnbdKit

/// The kernel on top of znbd, through nbdfuse + loop (these kernels have no nbd driver).
@Suite(.serialized, Facility.required(Facility.kernel))
struct KernelTests {
    init() throws { try Facility.require(Facility.kernel) }

    @Test func swapOnAZnbdDevice() throws {
        let server = try ZnbdServer(["--size", "128M"])
        defer { server.stop() }
        let attachment = try KernelAttachment(server: server)
        defer { attachment.detach() }
        let loop = try #require(attachment.loopDevice)
        try ExternalCommand.require("mkswap", [loop])
        try ExternalCommand.require("swapon", ["-p", "100", loop])
        attachment.onDetach { _ = try? ExternalCommand.run("swapoff", [loop], timeout: 120) }
        let swaps = try String(contentsOfFile: "/proc/swaps", encoding: .utf8)
        let line = try #require(swaps.split(separator: "\n").first { $0.hasPrefix(loop + " ") })
        #expect(line.split(separator: "\t").last?.trimmingCharacters(in: .whitespaces) == "100"
            || line.hasSuffix("100"), "\(line)")
        let status = try server.cli(["status"])
        #expect(status.stdout.contains("[SWAP]"), "\(status)")
        try ExternalCommand.require("swapoff", [loop], timeout: 120)
        #expect(!(try String(contentsOfFile: "/proc/swaps", encoding: .utf8)).contains(loop + " "))
    }

    @Test func ext4ScratchDiskFreesMemoryOnTrim() throws {
        let server = try ZnbdServer(["--size", "256M"])
        defer { server.stop() }
        let attachment = try KernelAttachment(server: server)
        defer { attachment.detach() }
        let loop = try #require(attachment.loopDevice)
        let mountPoint = server.directory + "/mnt"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        try ExternalCommand.require("mkfs.ext4", ["-q", "-E", "nodiscard", loop], timeout: 120)
        try ExternalCommand.require("mount", ["-o", "discard", loop, mountPoint])
        attachment.onDetach { _ = try? ExternalCommand.run("umount", ["-l", mountPoint], timeout: 60) }

        try ScratchFiles.writeAndVerify(in: mountPoint, label: "ext4")
        let before = try memUsedTotal(server)
        #expect(before > 32 << 20)

        try ExternalCommand.require("bash", ["-c", "rm \(mountPoint)/noise* \(mountPoint)/text[1-6] && sync"])
        try ExternalCommand.require("fstrim", ["-v", mountPoint], timeout: 120)
        let after = try memUsedTotal(server)
        print("ext4 scratch: mem_used_total \(before) -> \(after) after rm + fstrim")
        #expect(after < before / 2, "mem_used_total \(before) -> \(after)")
        let notifyFree = try server.cli(["get", "zram0", "io_stat"]).stdout.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        #expect(notifyFree.count == 4 && notifyFree[3] > 0)
        try ScratchFiles.verify(in: mountPoint, allowingMissing: true)
        try ExternalCommand.require("umount", [mountPoint], timeout: 60)
        try ExternalCommand.require("e2fsck", ["-fn", loop], timeout: 120)
    }

    private func memUsedTotal(_ server: ZnbdServer) throws -> Int {
        let fields = try server.cli(["get", "zram0", "mm_stat"]).stdout.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        try #require(fields.count == 9)
        return fields[2]
    }
}
