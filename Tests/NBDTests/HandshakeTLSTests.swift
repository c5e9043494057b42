import Testing
@testable import NBD

/// NBD_OPT_STARTTLS in the handshake state machine: the protocol's TLS rules, no sockets.
@Suite struct HandshakeTLSTests {
    let export = MemoryExport(name: "zram0", size: 1 << 20, description: "1 MiB test")

    func machine(_ tls: TLSConfiguration.Mode) -> Handshake {
        let e = export
        var h = Handshake(tls: tls, lookup: { $0.isEmpty || $0 == "zram0" ? e : nil }, list: { [e] })
        h.output.removeAll()
        return h
    }

    func option(_ o: UInt32, _ data: [UInt8] = []) -> [UInt8] {
        var b: [UInt8] = []
        b.appendBE(NBDMagic.option)
        b.appendBE(o)
        b.appendBE(UInt32(data.count))
        return b + data
    }

    let clientFlags: [UInt8] = [0, 0, 0, 3]

    /// (option, reply type) of every option reply in `bytes`.
    func replies(_ bytes: [UInt8]) -> [(UInt32, UInt32)] {
        var out: [(UInt32, UInt32)] = []
        var at = 0
        while bytes.count - at >= 20 {
            #expect(bytes.beU64(at) == NBDMagic.optionReply)
            out.append((bytes.beU32(at + 8), bytes.beU32(at + 12)))
            at += 20 + Int(bytes.beU32(at + 16))
        }
        #expect(at == bytes.count, "trailing bytes after the option replies")
        return out
    }

    func replyTypes(_ bytes: [UInt8]) -> [NBDOptionReply?] { replies(bytes).map { NBDOptionReply(rawValue: $0.1) } }

    @Test func startTLSWithoutTLSIsPolicyNeverTLSRequired() {
        var h = machine(.off)
        #expect(h.receive(clientFlags + option(5)) == .needMore)
        #expect(replyTypes(h.output) == [.errPolicy])
        #expect(!h.isTLSActive)
    }

    @Test func startTLSUpgradesAndHagglingContinuesOverTLS() {
        var h = machine(.on)
        #expect(h.receive(clientFlags + option(5)) == .startTLS)
        #expect(replies(h.output).map(\.0) == [5])
        #expect(replyTypes(h.output) == [.ack])
        h.output.removeAll()
        h.tlsStarted()
        #expect(h.isTLSActive)
        #expect(h.receive(option(8) + option(7, RawClient.infoRequest(name: "zram0"))) == .transmission)
        #expect(h.session?.structuredReplies == true)
    }

    @Test func optionalTLSStillServesPlaintextClients() {
        var h = machine(.on)
        #expect(h.receive(clientFlags + option(3)) == .needMore)
        #expect(replyTypes(h.output) == [.server, .ack])
        #expect(h.receive(option(7, RawClient.infoRequest(name: "zram0"))) == .transmission)
        #expect(!h.isTLSActive)
    }

    /// Every option but ABORT and STARTTLS, known or not, with its data.
    static let optionsBeforeTLS: [(UInt32, [UInt8])] = [
        (3, []),
        (6, RawClient.infoRequest(name: "zram0")),
        (7, RawClient.infoRequest(name: "zram0")),
        (8, []),
        (9, RawClient.metaRequest(name: "zram0", queries: ["base:allocation"])),
        (10, RawClient.metaRequest(name: "zram0", queries: ["base:allocation"])),
        (4, []), (11, []), (0, []), (12345, [1, 2, 3]),
    ]

    /// ... is refused before TLS.
    @Test(arguments: optionsBeforeTLS)
    func requiredTLSRefusesEveryOptionBeforeStartTLS(_ o: UInt32, _ data: [UInt8]) {
        var h = machine(.require)
        #expect(h.receive(clientFlags + option(o, data)) == .needMore)
        #expect(replies(h.output).map(\.0) == [o])
        #expect(replyTypes(h.output) == [.errTLSReqd])
        #expect(h.session == nil)
    }

    @Test func requiredTLSClosesOnExportNameBeforeStartTLS() {
        var h = machine(.require)
        guard case .close = h.receive(clientFlags + option(1, Array("zram0".utf8))) else {
            Issue.record("EXPORT_NAME before STARTTLS must close")
            return
        }
        #expect(h.output.isEmpty, "no export data may be sent")
        #expect(h.session == nil)
    }

    @Test func requiredTLSStillAcceptsAbort() {
        var h = machine(.require)
        guard case .close = h.receive(clientFlags + option(2)) else {
            Issue.record("ABORT must close")
            return
        }
        #expect(replyTypes(h.output) == [.ack])
    }

    @Test func requiredTLSServesEverythingAfterStartTLS() {
        var h = machine(.require)
        #expect(h.receive(clientFlags + option(3) + option(8)) == .needMore)
        #expect(replyTypes(h.output) == [.errTLSReqd, .errTLSReqd])
        #expect(h.receive(option(5)) == .startTLS)
        h.output.removeAll()
        h.tlsStarted()
        #expect(h.receive(option(3)) == .needMore)
        #expect(replyTypes(h.output) == [.server, .ack])
        h.output.removeAll()
        #expect(h.receive(option(1, Array("zram0".utf8))) == .transmission)
        #expect(h.output.beU64(0) == 1 << 20)
    }

    @Test(arguments: [TLSConfiguration.Mode.on, .require])
    func startTLSTwiceIsInvalid(_ mode: TLSConfiguration.Mode) {
        var h = machine(mode)
        #expect(h.receive(clientFlags + option(5)) == .startTLS)
        h.output.removeAll()
        h.tlsStarted()
        #expect(h.receive(option(5)) == .needMore)
        #expect(replyTypes(h.output) == [.errInvalid])
        #expect(h.isTLSActive)
    }

    @Test func startTLSWithDataIsInvalid() {
        var h = machine(.require)
        #expect(h.receive(clientFlags + option(5, [0])) == .needMore)
        #expect(replyTypes(h.output) == [.errInvalid])
        #expect(!h.isTLSActive)
    }

    /// Bytes pipelined behind STARTTLS would be plaintext spliced into the TLS session.
    @Test func bytesPipelinedAfterStartTLSClose() {
        var h = machine(.on)
        guard case .close = h.receive(clientFlags + option(5) + option(3)) else {
            Issue.record("plaintext after STARTTLS must close")
            return
        }
        #expect(replyTypes(h.output).isEmpty, "no ACK for an injected STARTTLS")
    }

    @Test func bytesFedDuringTheTLSHandshakeClose() {
        var h = machine(.on)
        #expect(h.receive(clientFlags + option(5)) == .startTLS)
        guard case .close = h.receive([0x16, 3, 1]) else {
            Issue.record("bytes before tlsStarted() must close")
            return
        }
    }

    /// Structured replies and meta contexts negotiated in plaintext are forgotten (the spec
    /// has the client renegotiate them after STARTTLS).
    @Test func plaintextNegotiationDoesNotCarryOverTLS() {
        var h = machine(.on)
        let meta = RawClient.metaRequest(name: "zram0", queries: ["base:allocation"])
        #expect(h.receive(clientFlags + option(8) + option(10, meta)) == .needMore)
        #expect(replyTypes(h.output) == [.ack, .metaContext, .ack])
        #expect(h.receive(option(5)) == .startTLS)
        h.tlsStarted()
        #expect(h.receive(option(7, RawClient.infoRequest(name: "zram0"))) == .transmission)
        #expect(h.session?.structuredReplies == false)
        #expect(h.session?.baseAllocation == false)
        #expect(h.session?.transmissionFlags.contains(.sendDF) == false)
    }

    @Test func startTLSArrivingOneByteAtATime() {
        var h = machine(.require)
        var last = Handshake.Step.needMore
        for b in clientFlags + option(5) { last = h.receive([b]) }
        #expect(last == .startTLS)
        #expect(replyTypes(h.output) == [.ack])
    }

    /// Random option sequences (fixed seed): under `require` nothing but ERR_TLS_REQD, and
    /// the ACKs of ABORT and STARTTLS, goes out before TLS, and transmission never starts
    /// in plaintext; under `on` and `require` STARTTLS twice never upgrades twice.
    @Test(arguments: [TLSConfiguration.Mode.on, .require])
    func randomOptionSequencesKeepTheTLSRules(_ mode: TLSConfiguration.Mode) {
        let seed: UInt64 = 0x5e55_1011
        var state = seed
        func next() -> UInt64 {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state
        }
        let options: [UInt32] = [1, 2, 3, 5, 5, 5, 6, 7, 8, 9, 10, 11, 99]
        for round in 0..<5_000 {
            var h = machine(mode)
            var upgrades = 0
            var step = h.receive(clientFlags)
            for _ in 0..<Int(next() % 8 + 1) {
                let o = options[Int(next() % UInt64(options.count))]
                let data: [UInt8] =
                    switch o {
                    case 6, 7: RawClient.infoRequest(name: next() % 4 == 0 ? "nope" : "zram0", infos: [3])
                    case 9, 10: RawClient.metaRequest(name: "zram0", queries: ["base:allocation"])
                    case 1: Array("zram0".utf8)
                    default: next() % 8 == 0 ? [1] : []
                    }
                let wasTLS = h.isTLSActive
                step = h.receive(option(o, data))
                if mode == .require && !wasTLS {
                    for (option, type) in replies(h.output) {
                        let allowed = type == NBDOptionReply.errTLSReqd.rawValue
                            || (type == NBDOptionReply.ack.rawValue && (option == 2 || option == 5))
                            || (type == NBDOptionReply.errInvalid.rawValue && option == 5)
                        #expect(allowed, "round \(round) (seed \(seed)): option \(option) got \(type) before TLS")
                    }
                    #expect(step != .transmission, "round \(round) (seed \(seed)): transmission without TLS")
                }
                h.output.removeAll()
                if step == .startTLS {
                    upgrades += 1
                    h.tlsStarted()
                } else if step != .needMore {
                    break
                }
            }
            #expect(upgrades <= 1, "round \(round) (seed \(seed)): upgraded \(upgrades) times")
        }
    }
}
