import Testing
@testable import NBD

/// The handshake as a pure state machine: bytes in, bytes out, no sockets.
@Suite struct HandshakeMachineTests {
    let export = MemoryExport(name: "zram0", size: 1 << 20, description: "1 MiB test")

    func machine() -> Handshake {
        let e = export
        return Handshake(lookup: { $0.isEmpty || $0 == "zram0" ? e : nil }, list: { [e] })
    }

    func option(_ o: UInt32, _ data: [UInt8] = []) -> [UInt8] {
        var b: [UInt8] = []
        b.appendBE(NBDMagic.option)
        b.appendBE(o)
        b.appendBE(UInt32(data.count))
        return b + data
    }

    func flags(_ f: UInt32) -> [UInt8] {
        var b: [UInt8] = []
        b.appendBE(f)
        return b
    }

    @Test func greetingOffersFixedNewstyleAndNoZeroes() {
        let h = machine()
        #expect(h.output.count == 18)
        #expect(h.output.beU64(0) == NBDMagic.greeting)
        #expect(h.output.beU64(8) == NBDMagic.option)
        #expect(h.output.beU16(16) == 3)
    }

    @Test(arguments: [UInt32(4), 0x8000_0000, 0xFFFF_FFFF])
    func unknownClientFlagsClose(_ f: UInt32) {
        var h = machine()
        guard case .close = h.receive(flags(f)) else {
            Issue.record("expected close")
            return
        }
    }

    @Test func exportNameWithAndWithoutZeroes() {
        for (clientFlags, expected) in [(UInt32(1), 10 + 124), (UInt32(3), 10)] {
            var h = machine()
            h.output.removeAll()
            #expect(h.receive(flags(clientFlags) + option(1, Array("zram0".utf8))) == .transmission)
            #expect(h.output.count == expected)
            #expect(h.output.beU64(0) == 1 << 20)
            let f = NBDTransmissionFlags(rawValue: h.output.beU16(8))
            #expect(f.contains([.hasFlags, .sendFlush, .sendFUA, .sendTrim, .sendWriteZeroes, .sendFastZero, .sendCache, .canMultiConn]))
            #expect(!f.contains(.sendDF))
            #expect(!f.contains(.readOnly))
        }
    }

    @Test func bytesArrivingOneAtATimeWork() {
        var h = machine()
        let stream = flags(3) + option(8) + option(7, RawClient.infoRequest(name: "", infos: [3])) + [1, 2, 3]
        var last = Handshake.Step.needMore
        for b in stream.dropLast(3) { last = h.receive([b]) }
        #expect(last == .transmission)
        #expect(h.session?.structuredReplies == true)
        #expect(h.session?.transmissionFlags.contains(.sendDF) == true)
        #expect(h.receive([1, 2, 3]) == .transmission)
    }

    @Test func pipelinedRequestsAfterGoAreLeftOver() {
        var h = machine()
        let stream = flags(3) + option(7, RawClient.infoRequest(name: "zram0")) + [9, 8, 7, 6]
        #expect(h.receive(stream) == .transmission)
        #expect(h.leftover == [9, 8, 7, 6])
    }

    @Test func oversizedOptionClosesWithoutAllocating() {
        var h = machine()
        var b = flags(3)
        b.appendBE(NBDMagic.option)
        b.appendBE(UInt32(3))
        b.appendBE(UInt32(0xFFFF_FFF0))
        guard case .close = h.receive(b) else {
            Issue.record("expected close")
            return
        }
    }

    @Test func badOptionMagicCloses() {
        var h = machine()
        guard case .close = h.receive(flags(3) + [UInt8](repeating: 0x41, count: 16)) else {
            Issue.record("expected close")
            return
        }
    }

    @Test func unknownExportNameCloses() {
        var h = machine()
        guard case .close = h.receive(flags(3) + option(1, Array("nope".utf8))) else {
            Issue.record("expected close")
            return
        }
    }

    @Test func setMetaContextIsRememberedForTheChosenExportOnly() {
        var h = machine()
        let meta = RawClient.metaRequest(name: "zram0", queries: ["base:allocation"])
        _ = h.receive(flags(3) + option(8) + option(10, meta) + option(7, RawClient.infoRequest(name: "zram0")))
        #expect(h.session?.baseAllocation == true)
        var h2 = machine()
        _ = h2.receive(flags(3) + option(8) + option(7, RawClient.infoRequest(name: "zram0")))
        #expect(h2.session?.baseAllocation == false)
    }
}
