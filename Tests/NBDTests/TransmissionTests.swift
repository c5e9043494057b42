import Testing
@testable import NBD

#if canImport(Glibc)
import Glibc
#endif

/// Commands, replies and their error paths over a real socket.
@Suite struct TransmissionTests {
    let inval = NBDError.inval.rawValue
    let nospc = NBDError.nospc.rawValue

    @Test(arguments: [false, true])
    func writeReadRoundTrip(structured: Bool) throws {
        try withServer { s in
            let c = try s.connected(structured: structured)
            let data = [UInt8].pattern(12345, seed: 7)
            #expect(try c.write(offset: 1000, data) == 0)
            #expect(try c.write(offset: 20000, data, flags: NBDCommandFlags.fua.rawValue) == 0)
            #expect(s.export.flushes.load(ordering: .relaxed) >= 1)
            #expect(try c.command(.flush, offset: 0, length: 0) == 0)
            let back = structured ? try c.structuredRead(offset: 1000, length: 12345).data : try c.simpleRead(offset: 1000, length: 12345)
            #expect(back == data)
            #expect(s.export.bytes(at: 20000, count: 12345) == data)
        }
    }

    /// Writes received in one batch are backlogged while another request follows them
    /// in the buffer; the batch's last write, and a write sent alone, are not.
    @Test func writesFollowedByMoreRequestsAreBacklogged() throws {
        try withServer { s in
            let c = try s.connected()
            var batch: [UInt8] = []
            for index in 0..<3 {
                let offset = UInt64(index * 4096)
                NBDRequest(flags: 0, type: NBDCommand.write.rawValue, cookie: UInt64(index), offset: offset, length: 4096)
                    .encode(into: &batch)
                batch += [UInt8].pattern(4096, seed: UInt64(index))
            }
            try c.send(batch)  // one send, so the server receives the three together
            for _ in 0..<3 { #expect(try c.readSimpleReply().0 == 0) }
            #expect(try c.write(offset: 65536, .pattern(4096, seed: 9)) == 0)
            #expect(s.export.backloggedOffsets.withLock { $0 } == [0, 4096])
            #expect(s.export.bytes(at: 4096, count: 4096) == .pattern(4096, seed: 1))
        }
    }

    @Test func structuredReadReportsHolesUnlessDF() throws {
        try withServer { s in
            let c = try s.connected()
            let data = [UInt8].pattern(4096, seed: 3)
            #expect(try c.write(offset: 65536, data) == 0)
            let (back, chunks) = try c.structuredRead(offset: 0, length: 256 << 10)
            #expect(Array(back[65536..<69632]) == data)
            #expect(back[0..<65536].allSatisfy { $0 == 0 } && back[69632...].allSatisfy { $0 == 0 })
            #expect(chunks.map(\.type) == [2, 1, 2])  // hole, data, hole
            #expect(chunks.filter(\.done).count == 1 && chunks.last!.done)
            let (back2, chunks2) = try c.structuredRead(offset: 0, length: 256 << 10, flags: NBDCommandFlags.df.rawValue)
            #expect(back2 == back)
            #expect(chunks2.count == 1 && chunks2[0].type == NBDChunkType.offsetData.rawValue)
            // Small reads are one data chunk.
            let small = try c.structuredRead(offset: 0, length: 4096)
            #expect(small.chunks.count == 1 && small.chunks[0].type == 1)
        }
    }

    @Test func blockStatusReflectsWritesZeroesAndTrims() throws {
        try withServer { s in
            let c = try s.connected()
            func status(_ offset: UInt64, _ length: UInt32, flags: UInt16 = 0) throws -> [(UInt32, UInt32)] {
                try c.sendRequest(.blockStatus, flags: flags, cookie: 9, offset: offset, length: length)
                let chunks = try c.readChunks()
                #expect(chunks.count == 1)
                let d = chunks[0].data
                #expect(chunks[0].type == NBDChunkType.blockStatus.rawValue)
                #expect(d.beU32(0) == NBDMetaContext.baseAllocationID)
                let extents = stride(from: 4, to: d.count, by: 8).map { (d.beU32($0), d.beU32($0 + 4)) }
                #expect(extents.reduce(0) { $0 + UInt64($1.0) } <= UInt64(length))
                return extents
            }
            #expect(try status(0, 1 << 20).map(\.1) == [3])
            #expect(try c.write(offset: 8192, [UInt8](repeating: 1, count: 8192)) == 0)
            #expect(try c.command(.writeZeroes, flags: NBDCommandFlags.noHole.rawValue, offset: 16384, length: 4096) == 0)
            let e = try status(0, 64 << 10)
            #expect(e.map(\.0) == [8192, 8192, 4096, 65536 - 20480])
            #expect(e.map(\.1) == [3, 0, 2, 3])
            let one = try status(0, 64 << 10, flags: NBDCommandFlags.reqOne.rawValue)
            #expect(one.count == 1 && one[0].0 == 8192 && one[0].1 == 3)
            #expect(try c.command(.trim, offset: 8192, length: 8192) == 0)
            #expect(try status(0, 64 << 10).map(\.1) == [3, 2, 3])
            #expect(try c.command(.blockStatus, offset: s.export.size - 4096, length: 8192) == inval)
            #expect(try c.command(.blockStatus, flags: NBDCommandFlags.fastZero.rawValue, offset: 0, length: 4096) == inval)
        }
    }

    @Test func blockStatusNeedsANegotiatedContext() throws {
        try withServer { s in
            let c = try s.connected(structured: true, meta: false)
            try c.sendRequest(.blockStatus, cookie: 5, offset: 0, length: 4096)
            let chunks = try c.readChunks()
            #expect(chunks.map(\.type) == [NBDChunkType.error.rawValue])
            #expect(chunks[0].data.beU32(0) == inval)
            let simple = try s.connected(structured: false)
            #expect(try simple.command(.blockStatus, offset: 0, length: 4096) == inval)
        }
    }

    @Test func trimAndWriteZeroesReadAsZero() throws {
        try withServer(size: 128 << 20) { s in
            let c = try s.connected()
            let data = [UInt8](repeating: 0xEE, count: 1 << 20)
            for i in 0..<4 { #expect(try c.write(offset: UInt64(i) << 20, data) == 0) }
            #expect(try c.command(.trim, offset: 4096, length: 8192) == 0)
            #expect(try c.command(.writeZeroes, flags: NBDCommandFlags.fastZero.rawValue, offset: 1 << 20, length: 100) == 0)
            #expect(try c.command(.writeZeroes, flags: NBDCommandFlags.noHole.rawValue | NBDCommandFlags.fua.rawValue, offset: 2 << 20, length: 4096) == 0)
            let back = try c.structuredRead(offset: 0, length: 4 << 20).data
            #expect(back[4096..<12288].allSatisfy { $0 == 0 })
            #expect(back[0..<4096].allSatisfy { $0 == 0xEE } && back[12288] == 0xEE)
            #expect(back[(1 << 20)..<((1 << 20) + 100)].allSatisfy { $0 == 0 } && back[(1 << 20) + 100] == 0xEE)
            #expect(back[(2 << 20)..<((2 << 20) + 4096)].allSatisfy { $0 == 0 })
            #expect(s.export.pageState((2 << 20) / 4096) == .zero)
            // Lengths beyond the payload limit are fine for TRIM and WRITE_ZEROES.
            #expect(try c.command(.writeZeroes, offset: 0, length: UInt32(s.export.size)) == 0)
            #expect(try c.command(.trim, offset: 0, length: UInt32(s.export.size)) == 0)
            #expect(try c.structuredRead(offset: 0, length: 4096).data.allSatisfy { $0 == 0 })
        }
    }

    @Test func pastTheEndErrors() throws {
        try withServer { s in
            let c = try s.connected(structured: false)
            let size = s.export.size
            #expect(try c.write(offset: size - 100, [UInt8](repeating: 1, count: 200)) == nospc)
            #expect(try c.command(.writeZeroes, offset: size, length: 1) == nospc)
            #expect(try c.command(.read, offset: size - 1, length: 2) == inval)
            #expect(try c.command(.trim, offset: size, length: 4096) == inval)
            #expect(try c.command(.cache, offset: size + 1, length: 1) == inval)
            // Offsets near 2^64 must not wrap around.
            for offset in [UInt64.max, UInt64.max - 4095, UInt64.max - 1 << 20, 1 << 63] {
                #expect(try c.write(offset: offset, [UInt8](repeating: 2, count: 4096)) == nospc)
                #expect(try c.command(.read, offset: offset, length: 4096) == inval)
                #expect(try c.command(.trim, offset: offset, length: UInt32.max) == inval)
                #expect(try c.command(.writeZeroes, offset: offset, length: 4096) == nospc)
                #expect(try c.command(.cache, offset: offset, length: 1) == inval)
            }
            // The device is untouched and the connection still works.
            #expect(try c.simpleRead(offset: size - 4096, length: 4096).allSatisfy { $0 == 0 })
            #expect(try c.command(.cache, offset: 0, length: 4096) == 0)
        }
    }

    @Test func unknownCommandsAndFlagsAreEINVAL() throws {
        try withServer { s in
            let simple = try s.connected(structured: false)
            try simple.sendRawRequest(type: 99, cookie: 1, offset: 0, length: 0)
            #expect(try simple.replyError(cookie: 1) == inval)
            #expect(try simple.command(.read, flags: 1 << 7, offset: 0, length: 512) == inval)
            #expect(try simple.command(.read, flags: NBDCommandFlags.df.rawValue, offset: 0, length: 512) == inval)
            #expect(try simple.command(.trim, flags: NBDCommandFlags.noHole.rawValue, offset: 0, length: 512) == inval)
            #expect(try simple.write(offset: 0, [1, 2, 3], flags: NBDCommandFlags.reqOne.rawValue) == inval)
            #expect(try simple.simpleRead(offset: 0, length: 3) == [0, 0, 0])  // the rejected write stored nothing
            let structured = try s.connected()
            try structured.sendRawRequest(type: 1000, cookie: 2, offset: 0, length: 0)
            let chunks = try structured.readChunks()
            #expect(chunks.count == 1 && chunks[0].type == NBDChunkType.error.rawValue && chunks[0].data.beU32(0) == inval)
        }
    }

    @Test(arguments: [false, true])
    func zeroLengthRequestsSucceed(structured: Bool) throws {
        try withServer { s in
            let c = try s.connected(structured: structured)
            for cmd in [NBDCommand.read, .trim, .writeZeroes, .cache, .flush] {
                #expect(try c.command(cmd, offset: 4096, length: 0) == 0, "\(cmd)")
            }
            #expect(try c.write(offset: 4096, []) == 0)
            #expect(try c.command(.read, offset: s.export.size, length: 0) == 0)
            if structured { #expect(try c.command(.blockStatus, offset: 0, length: 0) == 0) }
            #expect(try c.command(.read, offset: 0, length: 8) == 0)
        }
    }

    @Test func largePayloadsUsePooledBuffers() throws {
        try withServer(size: 160 << 20) { s in
            let big = [UInt8].pattern(64 << 20, seed: 11)
            let simple = try s.connected(structured: false)
            #expect(try simple.write(offset: 4096, big) == 0)
            #expect(try simple.simpleRead(offset: 4096, length: big.count) == big)
            let structured = try s.connected()
            #expect(try structured.structuredRead(offset: 4096, length: big.count).data == big)
            // A 47.6 MB write as in the reference project's integrity test.
            let odd = Array(big[0..<49_912_832])
            #expect(try structured.write(offset: 100 << 20, odd) == 0)
            #expect(try structured.structuredRead(offset: 100 << 20, length: odd.count, flags: NBDCommandFlags.df.rawValue).data == odd)
            #expect(s.server.replyBufferBytes <= s.server.connectionCount * s.server.configuration.replyBufferSize)
        }
    }

    @Test func oversizedRequestsAreAnsweredWithoutDropping() throws {
        try withServer(size: 256 << 20) { s in
            let c = try s.connected(structured: false)
            let tooBig = [UInt8](repeating: 7, count: (64 << 20) + 1)
            #expect(try c.write(offset: 0, tooBig) == NBDError.overflow.rawValue)
            #expect(try c.command(.read, offset: 0, length: 128 << 20) == NBDError.overflow.rawValue)
            #expect(try c.simpleRead(offset: 0, length: 16) == [UInt8](repeating: 0, count: 16))
            let sc = try s.connected()
            try sc.sendRequest(.read, cookie: 4, offset: 0, length: UInt32.max)
            let chunks = try sc.readChunks()
            #expect(chunks.map(\.type) == [NBDChunkType.error.rawValue])
            #expect(try sc.structuredRead(offset: 0, length: 16).data.count == 16)
        }
    }

    @Test func storeErrorsBecomeErrorReplies() throws {
        try withServer { s in
            s.export.failingPage.store(1 << 20, ordering: .relaxed)
            let sc = try s.connected()
            try sc.sendRequest(.read, cookie: 8, offset: 1 << 20, length: 4096)
            let chunks = try sc.readChunks()
            #expect(chunks.count == 1 && chunks[0].type == NBDChunkType.error.rawValue)
            #expect(chunks[0].data.beU32(0) == NBDError.io.rawValue)
            // A large read that fails half way: it is sent a reply buffer at a time, so whole
            // data chunks before the failing page may have gone out; the reply ends with EIO.
            try sc.sendRequest(.read, cookie: 9, offset: 0, length: 2 << 20)
            let chunks2 = try sc.readChunks()
            let failed = try #require(chunks2.last)
            #expect(failed.type == NBDChunkType.error.rawValue && failed.data.beU32(0) == NBDError.io.rawValue)
            #expect(failed.flags & nbdReplyFlagDone != 0)
            for data in chunks2.dropLast() {
                #expect(data.type == NBDChunkType.offsetData.rawValue)
                #expect(data.data.beU64(0) + UInt64(data.data.count - 8) <= 1 << 20, "data chunk past the failing page")
                #expect(data.data[8...].allSatisfy { $0 == 0 })
            }
            // Small enough for one reply buffer: rolled back to one error chunk.
            try sc.sendRequest(.read, cookie: 10, offset: (1 << 20) - (64 << 10), length: 128 << 10)
            #expect(try sc.readChunks().map(\.type) == [NBDChunkType.error.rawValue])
            #expect(try sc.write(offset: 1 << 20, [1]) == NBDError.io.rawValue)
            let simple = try s.connected(structured: false)
            #expect(try simple.command(.read, offset: 1 << 20, length: 512) == NBDError.io.rawValue)
            #expect(try simple.simpleRead(offset: 0, length: 512).count == 512)
        }
    }

    @Test func pipelinedRequestsAreAllAnswered() throws {
        try withServer { s in
            let c = try s.connected()
            var batch: [UInt8] = []
            for i in 0..<200 {
                NBDRequest(type: 1, cookie: UInt64(i), offset: UInt64(i) * 4096, length: 4096).encode(into: &batch)
                batch += [UInt8](repeating: UInt8(i & 0xff), count: 4096)
            }
            try c.send(batch)
            var seen = Set<UInt64>()
            for _ in 0..<200 {
                let (error, cookie) = try c.readSimpleReply()
                #expect(error == 0)
                seen.insert(cookie)
            }
            #expect(seen.count == 200)
            batch = []
            for i in 0..<200 { NBDRequest(type: 0, cookie: UInt64(1000 + i), offset: UInt64(i) * 4096, length: 4096).encode(into: &batch) }
            try c.send(batch)
            for _ in 0..<200 {
                let chunk = try c.readChunk()
                let i = Int(chunk.cookie) - 1000
                #expect(chunk.data.count == 4104 && chunk.data[8...].allSatisfy { $0 == UInt8(i & 0xff) })
            }
        }
    }

    @Test func disconnectFinishesEarlierRequestsThenCloses() throws {
        try withServer { s in
            let c = try s.connected(structured: false)
            var b: [UInt8] = []
            NBDRequest(type: 1, cookie: 77, offset: 0, length: 4).encode(into: &b)
            b += [9, 9, 9, 9]
            NBDRequest(type: 2, cookie: 78, offset: 0, length: 0).encode(into: &b)
            NBDRequest(type: 1, cookie: 79, offset: 8, length: 4).encode(into: &b)
            b += [5, 5, 5, 5]
            try c.send(b)
            let (error, cookie) = try c.readSimpleReply()
            #expect(error == 0 && cookie == 77)
            #expect(c.isClosedByServer())
            #expect(s.export.bytes(at: 0, count: 12) == [9, 9, 9, 9, 0, 0, 0, 0, 0, 0, 0, 0])
        }
    }

    @Test func badMagicClosesOnlyThatClient() throws {
        try withServer { s in
            let good = try s.connected()
            #expect(try good.write(offset: 0, [1, 2, 3]) == 0)
            let bad = try s.connected()
            try bad.send([UInt8](repeating: 0x55, count: 28))
            #expect(bad.isClosedByServer())
            #expect(try good.structuredRead(offset: 0, length: 3).data == [1, 2, 3])
        }
    }

    @Test func disconnectMidPayloadLeavesOthersServing() throws {
        try withServer { s in
            let good = try s.connected()
            #expect(try good.write(offset: 0, [4, 4, 4, 4, 4, 4, 4, 4]) == 0)
            // An unfinished WRITE may be partly applied (as a torn write on a disk): large
            // payloads are written a receive buffer at a time. Its range is not the good client's.
            for len in [100, 300 << 10, 8 << 20] {
                let c = try s.connected()
                var b: [UInt8] = []
                NBDRequest(type: 1, cookie: 1, offset: 16 << 20, length: UInt32(len)).encode(into: &b)
                try c.send(b + [UInt8](repeating: 1, count: len / 2))
                shutdown(c.fd, Int32(SHUT_RDWR))
            }
            #expect(try good.structuredRead(offset: 0, length: 8).data == [UInt8](repeating: 4, count: 8))
            #expect(try good.write(offset: 8, [5]) == 0)
        }
    }
}
