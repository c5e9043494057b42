import Foundation
import Testing

@testable import ZnbdKit

/// `writeback-device` in the configuration file: a path or an NBD URI for the
/// device's `backing_dev`, with errors that name the line.
@Suite struct ConfigWritebackDeviceTests {
    static func spec(_ value: String) throws -> DeviceSpec? {
        let config = try ZramConfig.parse("[zram0]\nzram-size = 64\nwriteback-device = \(value)\n")
        return try config.specs(ramBytes: 1 << 30).first?.spec
    }

    @Test(arguments: [
        "/dev/disk/by-partlabel/zram-writeback", "/var/lib/znbd/writeback.img",
        "nbd://backup.example:10809/cold", "nbds://alice@10.0.0.2/cold?tls-psk-file=/etc/znbd/keys.psk",
        "nbd+unix:///cold?socket=/run/nbd.sock", "nbds+unix:///?socket=/run/nbd.sock&tls-certificates=/etc/pki/nbd",
    ])
    func aPathOrAnNBDURIIsTheBackingDevice(value: String) throws {
        #expect(try Self.spec(value)?.writebackDevice == value)
    }

    @Test func withoutTheKeyThereIsNoBackingDevice() throws {
        let config = try ZramConfig.parse("[zram0]\nzram-size = 64\n")
        #expect(try config.specs(ramBytes: 1 << 30).first?.spec.writebackDevice == nil)
    }

    @Test(arguments: [
        ("writeback.img", "absolute path"),
        ("nbd+vsock:///", "supported NBD URIs"),
        ("nbdx://host/export", "supported NBD URIs"),
    ])
    func anythingElseIsAnErrorOnItsLine(value: String, message: String) {
        #expect {
            _ = try ZramConfig.parse("[zram0]\n\nwriteback-device = \(value)\n", file: "znbd.conf")
        } throws: { error in
            guard let error = error as? ZramConfig.Error else { return false }
            return error.line == 3 && error.file == "znbd.conf" && error.message.contains(message)
        }
    }

    @Test func theKeyIsSetOncePerSection() {
        #expect {
            _ = try ZramConfig.parse("[zram0]\nwriteback-device = /a\nwriteback-device = /b\n")
        } throws: { error in
            (error as? ZramConfig.Error)?.line == 3
        }
    }

    /// `swapon` again with another writeback device says so instead of doing nothing.
    @Test func aDifferentWritebackDeviceIsADifference() {
        var use = SetupState.Use(priority: 100)
        use.size = 64 << 20
        use.writebackDevice = "/dev/sdb1"
        var state = SetupState()
        state.swaps = [use]
        let asked = DeviceSpec(size: 64 << 20, writebackDevice: "/dev/sdc1")
        #expect(state.swapDifferences(from: [asked]) == ["writeback-device: /dev/sdb1 set up, /dev/sdc1 asked"])
        #expect(state.swapDifferences(from: [DeviceSpec(size: 64 << 20, writebackDevice: "/dev/sdb1")]) == [])
    }

    /// `swapon` again with tiering turned on, off or given another watermark says so;
    /// a state file from before tiering was recorded compares nothing about it.
    @Test func aDifferentTieringSettingIsADifference() {
        var use = SetupState.Use(priority: 100)
        use.size = 64 << 20
        var state = SetupState()
        state.swaps = [use]
        var asked = DeviceSpec(size: 64 << 20)
        asked.tiering = true
        #expect(state.swapDifferences(from: [asked]) == [], "an older state file recorded no tiering")
        state.swaps[0].tiering = false
        #expect(state.swapDifferences(from: [asked]) == ["tiering: off set up, on asked"])
        state.swaps[0].tiering = true
        #expect(state.swapDifferences(from: [asked]) == [])
        asked.tieringHighWatermark = 32 << 20
        #expect(state.swapDifferences(from: [asked]) == ["tiering-high-watermark: the default set up, 32M asked"])
        state.swaps[0].tieringHighWatermark = 32 << 20
        #expect(state.swapDifferences(from: [asked]) == [])
    }
}
