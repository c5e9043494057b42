import Testing
@testable import NBD
import Platform

/// Option haggling over a real Unix socket.
@Suite struct HandshakeTests {
    let ack = NBDOptionReply.ack.rawValue

    @Test func nbdClientStyleGoWithoutInfoRequestsThenSimpleReplies() throws {
        try withServer { s in
            let c = try s.client()
            #expect(try c.readGreeting() == 3)
            try c.sendClientFlags(3)
            try c.sendOption(NBDOption.go.rawValue, RawClient.infoRequest(name: "zram0"))
            let replies = try c.readOptionReplies()
            #expect(replies.count == 2)
            #expect(replies[0].type == NBDOptionReply.info.rawValue)
            #expect(replies[0].data.count == 12)
            #expect(replies[0].data.beU16(0) == NBDInfoType.export.rawValue)
            #expect(replies[0].data.beU64(2) == s.export.size)
            let flags = NBDTransmissionFlags(rawValue: replies[0].data.beU16(10))
            #expect(flags.contains([.hasFlags, .sendFlush, .sendFUA, .sendTrim, .sendWriteZeroes, .canMultiConn]))
            #expect(!flags.contains(.sendDF))
            #expect(replies[1].type == ack)
            let data = [UInt8].pattern(4096, seed: 1)
            #expect(try c.write(offset: 8192, data) == 0)
            #expect(try c.simpleRead(offset: 8192, length: 4096) == data)
            #expect(s.server.connectionCount(export: "zram0") == 1)
        }
    }

    @Test(arguments: [UInt32(1), UInt32(3)])
    func exportNameFallbackWithAndWithoutNoZeroes(clientFlags: UInt32) throws {
        try withServer { s in
            let c = try s.client()
            try c.readGreeting()
            try c.sendClientFlags(clientFlags)
            // nbd-client falls back to EXPORT_NAME when GO is unsupported; here it asks for it directly.
            try c.sendOption(NBDOption.exportName.rawValue, Array("zram0".utf8))
            let reply = try c.receive(clientFlags & 2 != 0 ? 10 : 134)
            #expect(reply.beU64(0) == s.export.size)
            #expect(NBDTransmissionFlags(rawValue: reply.beU16(8)).contains(.hasFlags))
            if clientFlags & 2 == 0 { #expect(reply[10...].allSatisfy { $0 == 0 }) }
            #expect(try c.simpleRead(offset: 0, length: 512) == [UInt8](repeating: 0, count: 512))
        }
    }

    @Test func exportNameUnknownCloses() throws {
        try withServer { s in
            let c = try s.client()
            try c.readGreeting()
            try c.sendClientFlags(3)
            try c.sendOption(NBDOption.exportName.rawValue, Array("missing".utf8))
            #expect(c.isClosedByServer())
        }
    }

    @Test func emptyNameMeansDefaultAndOtherExportsResolve() throws {
        let other = MemoryExport(name: "zram1", size: 8 << 20)
        try withServer(extraExports: [other]) { s in
            let (size0, _) = try s.client().handshake(export: "")
            #expect(size0 == s.export.size)
            let (size1, _) = try s.client().handshake(export: "zram1")
            #expect(size1 == 8 << 20)
        }
    }

    @Test func infoAnswersRequestedTypesAndStaysInHaggling() throws {
        try withServer { s in
            let c = try s.client()
            try c.readGreeting()
            try c.sendClientFlags(3)
            try c.sendOption(NBDOption.info.rawValue, RawClient.infoRequest(name: "", infos: [1, 2, 3, 99, 3]))
            let r = try c.readOptionReplies()
            let infos = r.filter { $0.type == NBDOptionReply.info.rawValue }
            let byType = Dictionary(infos.map { ($0.data.beU16(0), $0.data) }, uniquingKeysWith: { a, _ in a })
            #expect(infos.count == 4)  // export, name, description, block size; 99 ignored, duplicate ignored
            #expect(byType[1].map { String(decoding: $0[2...], as: UTF8.self) } == "zram0")
            #expect(byType[2].map { String(decoding: $0[2...], as: UTF8.self) } == s.export.exportDescription)
            let bs = try #require(byType[3])
            #expect(bs.beU32(2) == 1)
            #expect(bs.beU32(6) == 4096)
            #expect(bs.beU32(10) == 32 << 20)
            #expect(r.last?.type == ack)
            // Still haggling: GO works afterwards.
            try c.sendOption(NBDOption.go.rawValue, RawClient.infoRequest(name: ""))
            #expect(try c.readOptionReplies().last?.type == ack)
            #expect(try c.simpleRead(offset: 0, length: 16).count == 16)
        }
    }

    @Test func goErrorsKeepTheHandshakeGoing() throws {
        try withServer { s in
            let c = try s.client()
            try c.readGreeting()
            try c.sendClientFlags(3)
            try c.sendOption(NBDOption.go.rawValue, RawClient.infoRequest(name: "missing"))
            #expect(try c.readOptionReply().type == NBDOptionReply.errUnknown.rawValue)
            // Name length pointing past the option.
            var bad: [UInt8] = []
            bad.appendBE(UInt32(1000))
            bad += [0, 0]
            try c.sendOption(NBDOption.go.rawValue, bad)
            #expect(try c.readOptionReply().type == NBDOptionReply.errInvalid.rawValue)
            // Info count disagreeing with the length.
            var bad2 = RawClient.infoRequest(name: "zram0", infos: [1, 2])
            bad2.removeLast()
            try c.sendOption(NBDOption.info.rawValue, bad2)
            #expect(try c.readOptionReply().type == NBDOptionReply.errInvalid.rawValue)
            try c.sendOption(NBDOption.go.rawValue, [1, 2])
            #expect(try c.readOptionReply().type == NBDOptionReply.errInvalid.rawValue)
            try c.sendOption(NBDOption.go.rawValue, RawClient.infoRequest(name: "zram0"))
            #expect(try c.readOptionReplies().last?.type == ack)
        }
    }

    @Test func listThenAbort() throws {
        let other = MemoryExport(name: "zram1", size: 1 << 30, description: "1 GiB lz4")
        try withServer(extraExports: [other]) { s in
            let c = try s.client()
            try c.readGreeting()
            try c.sendClientFlags(3)
            try c.sendOption(NBDOption.list.rawValue)
            let r = try c.readOptionReplies()
            #expect(r.count == 3)
            let servers = r.dropLast().map { d -> (String, String) in
                let n = Int(d.data.beU32(0))
                return (String(decoding: d.data[4..<4 + n], as: UTF8.self), String(decoding: d.data[(4 + n)...], as: UTF8.self))
            }
            #expect(servers.map(\.0) == ["zram0", "zram1"])
            #expect(servers[1].1 == "1 GiB lz4")
            #expect(r.allSatisfy { $0.option == NBDOption.list.rawValue })
            try c.sendOption(NBDOption.list.rawValue, [1])
            #expect(try c.readOptionReply().type == NBDOptionReply.errInvalid.rawValue)
            try c.sendOption(NBDOption.abort.rawValue)
            #expect(try c.readOptionReply().type == ack)
            #expect(c.isClosedByServer())
        }
    }

    @Test func startTLSUnknownAndUnsupportedOptions() throws {
        try withServer { s in
            let c = try s.client()
            try c.readGreeting()
            try c.sendClientFlags(3)
            try c.sendOption(NBDOption.startTLS.rawValue)
            #expect(try c.readOptionReply().type == NBDOptionReply.errPolicy.rawValue)
            try c.sendOption(999, [1, 2, 3])
            let unknown = try c.readOptionReply()
            #expect(unknown.type == NBDOptionReply.errUnsup.rawValue)
            #expect(unknown.option == 999)
            try c.sendOption(NBDOption.extendedHeaders.rawValue)
            #expect(try c.readOptionReply().type == NBDOptionReply.errUnsup.rawValue)
            try c.sendOption(NBDOption.structuredReply.rawValue, [0])
            #expect(try c.readOptionReply().type == NBDOptionReply.errInvalid.rawValue)
            try c.sendOption(NBDOption.go.rawValue, RawClient.infoRequest(name: ""))
            #expect(try c.readOptionReplies().last?.type == ack)
        }
    }

    @Test func metaContexts() throws {
        try withServer { s in
            let c = try s.client()
            try c.readGreeting()
            try c.sendClientFlags(3)
            let set = NBDOption.setMetaContext.rawValue
            let list = NBDOption.listMetaContext.rawValue
            try c.sendOption(set, RawClient.metaRequest(name: "", queries: ["base:allocation"]))
            #expect(try c.readOptionReply().type == NBDOptionReply.errInvalid.rawValue)  // needs structured replies
            for queries in [[], ["base:"], ["base:allocation"]] {
                try c.sendOption(list, RawClient.metaRequest(name: "zram0", queries: queries))
                let r = try c.readOptionReplies()
                #expect(r.count == 2)
                #expect(r[0].type == NBDOptionReply.metaContext.rawValue)
                #expect(String(decoding: r[0].data[4...], as: UTF8.self) == "base:allocation")
            }
            try c.sendOption(list, RawClient.metaRequest(name: "zram0", queries: ["qemu:dirty-bitmap:x"]))
            #expect(try c.readOptionReplies().map(\.type) == [ack])
            try c.sendOption(list, RawClient.metaRequest(name: "nope", queries: []))
            #expect(try c.readOptionReply().type == NBDOptionReply.errUnknown.rawValue)
            var malformed = RawClient.metaRequest(name: "zram0", queries: ["base:allocation"])
            malformed.removeLast(3)
            try c.sendOption(list, malformed)
            #expect(try c.readOptionReply().type == NBDOptionReply.errInvalid.rawValue)
            try c.sendOption(NBDOption.structuredReply.rawValue)
            #expect(try c.readOptionReply().type == ack)
            try c.sendOption(set, RawClient.metaRequest(name: "zram0", queries: ["base:allocation"]))
            let r = try c.readOptionReplies()
            #expect(r.map(\.type) == [NBDOptionReply.metaContext.rawValue, ack])
            #expect(r[0].data.beU32(0) == NBDMetaContext.baseAllocationID)
        }
    }

    @Test func hugeOptionLengthCloses() throws {
        try withServer { s in
            let c = try s.client()
            try c.readGreeting()
            try c.sendClientFlags(3)
            var b: [UInt8] = []
            b.appendBE(NBDMagic.option)
            b.appendBE(NBDOption.go.rawValue)
            b.appendBE(UInt32(0xC000_0000))
            try c.send(b)
            #expect(c.isClosedByServer())
            #expect(try s.connected(structured: false).simpleRead(offset: 0, length: 8).count == 8)
        }
    }

    @Test func idleHandshakeTimesOut() throws {
        try withServer(configure: { $0.handshakeTimeoutOverride = .milliseconds(300) }) { s in
            let idle = try s.client()
            try idle.readGreeting()
            // The client's receive timeout (10 s) fails this if the server never closes.
            #expect(idle.isClosedByServer())
            // Transmission itself has no idle timeout: idle longer than the handshake's.
            let c = try s.connected(structured: false)
            usleep(500_000)
            #expect(try c.simpleRead(offset: 0, length: 8).count == 8)
        }
    }

    /// A client that sends options and never reads their replies fills the socket
    /// and blocks the server's sends: the handshake deadline still frees its thread.
    @Test func clientThatNeverReadsOptionRepliesIsDroppedAtTheDeadline() throws {
        try withServer(configure: { $0.handshakeTimeoutOverride = .milliseconds(500) }) { s in
            let flooder = try s.client()
            try flooder.readGreeting()
            try flooder.sendClientFlags(3)
            var small: Int32 = 4096
            setsockopt(flooder.fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
            // INFO replies are several times longer than the request: the replies fill
            // both socket buffers long before the requests do. Bounded, non-blocking sends.
            var option: [UInt8] = []
            option.appendBE(NBDMagic.option)
            option.appendBE(NBDOption.info.rawValue)
            let info = RawClient.infoRequest(name: "", infos: [0, 1, 2, 3])
            option.appendBE(UInt32(info.count))
            option += info
            var burst: [UInt8] = []
            for _ in 0..<1024 { burst += option }
            var sent = 0
            for _ in 0..<64 {
                let n = burst.withUnsafeBytes { send(flooder.fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
                guard n > 0 else { break }
                sent += n
            }
            #expect(sent > 0)
            #expect(s.server.connectionCount == 1, "the flooding client should still be in its handshake")
            // Without reading a byte, wait (bounded) for the server to drop the connection.
            var polls = 0
            while s.server.connectionCount > 0 && polls < 200 {
                usleep(50_000)
                polls += 1
            }
            #expect(s.server.connectionCount == 0, "the server still waits for a client that never reads")
            #expect(try s.connected(structured: false).simpleRead(offset: 0, length: 8).count == 8)
        }
    }

    @Test func productionHandshakeTimeoutIsAtLeastThirtySeconds() {
        var config = NBDServerConfiguration()
        #expect(config.handshakeTimeout == .seconds(60))
        config.handshakeTimeout = .seconds(5)
        #expect(config.handshakeTimeout == .seconds(30))
        #expect(config.effectiveHandshakeTimeout == .seconds(30))
        config.handshakeTimeout = .seconds(120)
        #expect(config.handshakeTimeout == .seconds(120))
    }

    /// Any timeout becomes a poll timeout without overflowing: huge ones saturate.
    @Test func deadlinePollTimeoutsSaturate() {
        #expect(Deadline.never.pollTimeout == -1)
        #expect(Deadline(after: .seconds(Int64.max)).pollTimeout == Int32.max)
        #expect(Deadline(after: .seconds(9_223_372_036_854_776)).pollTimeout == Int32.max)
        #expect(Deadline(after: .zero).pollTimeout == 0)
        #expect(Deadline(after: .seconds(-5)).hasPassed)
        let soon = Deadline(after: .milliseconds(1500)).pollTimeout
        #expect(soon > 0 && soon <= 1500)
    }
}

#if canImport(Glibc)
import Glibc
#endif
