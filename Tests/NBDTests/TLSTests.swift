import Foundation
import Testing

@testable import NBD

/// TLS on the TCP listener against libnbd's and qemu's clients, and raw handshakes
/// for what those clients never send. Serialized: every test starts real clients.
@Suite(.serialized) struct TLSTests {
    /// A TCP server with TLS and throw-away credentials; both are removed afterwards.
    func withTLSServer(
        _ mode: TLSConfiguration.Mode = .require, psk: Bool = true, x509: Bool = false, verifyPeer: Bool = false,
        configure: @escaping (inout NBDServerConfiguration) -> Void = { _ in },
        _ body: (TestServer, TLSFixtures, Int) throws -> Void
    ) throws {
        let fixtures = try TLSFixtures()
        defer { fixtures.remove() }
        try withServer(size: 32 << 20, tcp: true, configure: { c in
            c.tls = TLSConfiguration(
                mode: mode, certificatesDirectory: x509 ? fixtures.serverCertificates : nil, verifyPeer: verifyPeer,
                pskFile: psk ? fixtures.pskFile : nil)
            configure(&c)
        }) { s in
            try body(s, fixtures, try #require(s.server.boundTCPPort))
        }
    }

    func pskURI(_ port: Int, _ file: String, user: String = "alice") -> String {
        "nbds://\(user)@127.0.0.1:\(port)/zram0?tls-psk-file=\(file)"
    }

    /// Deterministic bytes (a fixed-seed xorshift), so a failure is reproducible.
    func pattern(_ count: Int, seed: UInt64) -> Data {
        var state = seed
        var bytes = [UInt8](repeating: 0, count: count)
        for i in 0..<count {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            bytes[i] = UInt8(truncatingIfNeeded: state)
        }
        return Data(bytes)
    }

    @Test func pskClientRoundTripsDataOverTLS() throws {
        try withTLSServer { s, f, port in
            let info = try Tools.run("nbdinfo", [pskURI(port, f.pskFile)])
            #expect(info.status == 0, "\(info.output)")
            #expect(info.stdout.contains("with TLS"), "\(info.stdout)")

            let source = s.directory + "/source.img", back = s.directory + "/back.img"
            defer {
                unlink(source)
                unlink(back)
            }
            let data = pattern(12 << 20, seed: 0x7e57_0001)
            try data.write(to: URL(fileURLWithPath: source))
            let up = try Tools.run("nbdcopy", ["-C", "4", source, pskURI(port, f.pskFile)])
            #expect(up.status == 0, "\(up.output)")
            // The bytes reached the export itself, not just a TLS echo.
            let stored = Data(bytes: s.export.base, count: data.count)
            #expect(stored == data, "export content differs after nbdcopy over TLS (seed 0x7e570001)")
            let down = try Tools.run("nbdcopy", [pskURI(port, f.pskFile), back])
            #expect(down.status == 0, "\(down.output)")
            let read = try Data(contentsOf: URL(fileURLWithPath: back)).prefix(data.count)
            #expect(read == data, "data read back over TLS differs (seed 0x7e570001)")
        }
    }

    @Test func x509ClientsNeedACertificateSignedByTheCA() throws {
        try withTLSServer(psk: false, x509: true, verifyPeer: true) { _, f, port in
            let uri = { (dir: String) in "nbds://127.0.0.1:\(port)/zram0?tls-certificates=\(dir)" }
            let good = try Tools.run("nbdinfo", [uri(f.clientCertificates)])
            #expect(good.status == 0, "\(good.output)")
            #expect(good.stdout.contains("with TLS"), "\(good.stdout)")
            let rogue = try Tools.run("nbdinfo", [uri(f.rogueClientCertificates)])
            #expect(rogue.status != 0, "a client certificate from another CA was accepted: \(rogue.output)")
            // Only the CA, no client certificate at all.
            let bare = f.directory + "/bare-client"
            try FileManager.default.createDirectory(atPath: bare, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: f.clientCertificates + "/ca-cert.pem", toPath: bare + "/ca-cert.pem")
            let anonymous = try Tools.run("nbdinfo", [uri(bare)])
            #expect(anonymous.status != 0, "a client without a certificate was accepted: \(anonymous.output)")
            // The server still serves after refusing.
            #expect(try Tools.run("nbdinfo", [uri(f.clientCertificates)]).status == 0)
        }
    }

    @Test func wrongKeyAndUnknownUserFail() throws {
        try withTLSServer { _, f, port in
            let wrong = try Tools.run("nbdinfo", [pskURI(port, f.wrongPSKFile)])
            #expect(wrong.status != 0, "a wrong key was accepted: \(wrong.output)")
            let bobFile = f.directory + "/bob.psk"
            try String(contentsOfFile: f.pskFile, encoding: .utf8).replacingOccurrences(of: "alice:", with: "bob:")
                .write(toFile: bobFile, atomically: true, encoding: .utf8)
            let bob = try Tools.run("nbdinfo", [pskURI(port, bobFile, user: "bob")])
            #expect(bob.status != 0, "an unknown user was accepted: \(bob.output)")
            let right = try Tools.run("nbdinfo", [pskURI(port, f.pskFile)])
            #expect(right.status == 0, "\(right.output)")
        }
    }

    @Test func plaintextClientsAreRefusedUnderRequire() throws {
        try withTLSServer { s, _, port in
            let info = try Tools.run("nbdinfo", ["nbd://127.0.0.1:\(port)/zram0"])
            #expect(info.status != 0, "a plaintext client was served: \(info.output)")

            let c = try RawClient(tcpPort: port)
            try c.readGreeting()
            try c.sendClientFlags(3)
            for (option, data) in [
                (NBDOption.list, [UInt8]()), (.structuredReply, []), (.info, RawClient.infoRequest(name: "zram0")),
                (.go, RawClient.infoRequest(name: "zram0")), (.setMetaContext, RawClient.metaRequest(name: "zram0", queries: [])),
            ] {
                try c.sendOption(option.rawValue, data)
                let replies = try c.readOptionReplies()
                #expect(replies.map(\.type) == [NBDOptionReply.errTLSReqd.rawValue], "\(option)")
                #expect(replies.first?.option == option.rawValue)
            }
            try c.sendOption(NBDOption.exportName.rawValue, Array("zram0".utf8))
            #expect(c.isClosedByServer(), "EXPORT_NAME before STARTTLS must close the connection")
            #expect(s.server.connectionCount(export: "zram0") == 0)
        }
    }

    @Test func optionalTLSServesBothKindsOfClient() throws {
        try withTLSServer(.on) { _, f, port in
            let plain = try Tools.run("nbdinfo", ["nbd://127.0.0.1:\(port)/zram0"])
            #expect(plain.status == 0, "\(plain.output)")
            #expect(plain.stdout.contains("without TLS"), "\(plain.stdout)")
            let tls = try Tools.run("nbdinfo", [pskURI(port, f.pskFile)])
            #expect(tls.status == 0, "\(tls.output)")
            #expect(tls.stdout.contains("with TLS"), "\(tls.stdout)")
        }
    }

    @Test func unixSocketStaysPlaintext() throws {
        try withTLSServer { s, _, _ in
            let info = try Tools.run("nbdinfo", [s.uri()])
            #expect(info.status == 0, "\(info.output)")
            #expect(info.stdout.contains("without TLS"), "\(info.stdout)")
        }
    }

    @Test func qemuReadsAndWritesOverTLS() throws {
        try withTLSServer(x509: true) { _, f, port in
            let pskObject = "tls-creds-psk,id=tls0,dir=\(f.directory)/psk,username=alice,endpoint=client"
            let image = "driver=nbd,host=127.0.0.1,port=\(port),export=zram0,tls-creds=tls0"
            let info = try Tools.run("qemu-img", ["info", "--image-opts", "--object", pskObject, image])
            #expect(info.status == 0, "\(info.output)")
            #expect(info.stdout.contains("32 MiB"), "\(info.stdout)")
            // 8 MiB requests: replies larger than one TLS record and than the gather buffer.
            let io = try Tools.run("qemu-io", [
                "--image-opts", "--object", pskObject,
                "-c", "write -P 0x5a 0 8M", "-c", "write -P 0xa5 8M 4k", "-c", "read -P 0x5a 0 8M", "-c", "read -P 0xa5 8M 4k", image,
            ])
            #expect(io.status == 0, "\(io.output)")
            #expect(!io.stdout.contains("Pattern verification failed"), "\(io.stdout)")
            let x509Object = "tls-creds-x509,id=tls0,dir=\(f.clientCertificates),endpoint=client"
            let viaX509 = try Tools.run("qemu-io", ["--image-opts", "--object", x509Object, "-c", "read -P 0x5a 1M 64k", image])
            #expect(viaX509.status == 0 && !viaX509.stdout.contains("Pattern verification failed"), "\(viaX509.output)")
        }
    }

    /// Plaintext pipelined behind STARTTLS would be spliced into the TLS stream: the
    /// server hangs up instead of acknowledging.
    @Test func bytesPipelinedBehindStartTLSCloseTheConnection() throws {
        try withTLSServer { _, _, port in
            let c = try RawClient(tcpPort: port)
            try c.readGreeting()
            var bytes: [UInt8] = [0, 0, 0, 3]
            for option in [NBDOption.startTLS, .list] {
                bytes.appendBE(NBDMagic.option)
                bytes.appendBE(option.rawValue)
                bytes.appendBE(UInt32(0))
            }
            try c.send(bytes)
            #expect(c.isClosedByServer())
        }
    }

    /// A client that stops in the middle of the TLS handshake is cut off at the
    /// handshake deadline instead of holding its thread.
    @Test func stalledTLSHandshakeIsCutOffAtTheDeadline() throws {
        try withTLSServer(configure: { $0.handshakeTimeoutOverride = .seconds(1) }) { s, _, port in
            let c = try RawClient(tcpPort: port, timeoutSeconds: 20)
            try c.readGreeting()
            try c.sendClientFlags(3)
            try c.sendOption(NBDOption.startTLS.rawValue)
            #expect(try c.readOptionReply().type == NBDOptionReply.ack.rawValue)
            try c.send([0x16, 0x03, 0x01, 0x02])  // the start of a ClientHello record, then silence
            #expect(c.isClosedByServer(), "the server kept a stalled TLS handshake open")
            #expect(s.server.connectionCount == 0)
        }
    }

    /// Garbage where the TLS handshake should be (random bytes, or a record header
    /// with random contents) closes that connection only; the server keeps serving.
    @Test func garbageInsteadOfATLSHandshakeClosesOnlyThatConnection() throws {
        let seed: UInt64 = 0x6a7b_a6e0
        try withTLSServer { s, f, port in
            var state = seed
            func next() -> UInt64 {
                state ^= state << 13
                state ^= state >> 7
                state ^= state << 17
                return state
            }
            for round in 0..<100 {
                let c = try RawClient(tcpPort: port)
                try c.readGreeting()
                try c.sendClientFlags(3)
                try c.sendOption(NBDOption.startTLS.rawValue)
                #expect(try c.readOptionReply().type == NBDOptionReply.ack.rawValue)
                var garbage = (0..<Int(next() % 4096 + 1)).map { _ in UInt8(truncatingIfNeeded: next()) }
                if round % 2 == 0 { garbage.insert(contentsOf: [0x16, 0x03, 0x01], at: 0) }
                try c.send(garbage)
                shutdown(c.fd, Int32(SHUT_WR))
                #expect(c.isClosedByServer(), "round \(round) (seed \(seed)) left the connection open")
            }
            #expect(s.server.connectionCount == 0)
            let info = try Tools.run("nbdinfo", [pskURI(port, f.pskFile)])
            #expect(info.status == 0, "\(info.output)")
        }
    }
}
