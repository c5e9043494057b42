import Dispatch
import Foundation
import Synchronization
import Testing
@testable import NBD

#if canImport(Glibc)
import Glibc
#endif

/// Issue 10's hostile-input suite for the NBD socket: at least 100,000 fuzzed
/// handshake options and requests (random, and mutated valid traffic), many per
/// connection. Connections whose requests stay well framed must get exactly one
/// complete, well-formed reply per request; afterwards the data written before the
/// fuzzing is unchanged byte for byte and the server still serves a new client.
///
/// The seed is printed; rerun one with `NBD_FUZZ_SEED=<seed>`.
@Suite struct HostileInputTests {
    typealias Rng = FuzzTests.Rng

    static let scratchSize: UInt64 = 4 << 20
    static let messageTarget = 100_000
    static let workers = 4
    /// WRITE payloads are cut from this.
    static let payloads = [UInt8].pattern(1 << 20, seed: 99)

    /// What happened on one worker.
    struct Tally {
        var messages = 0
        var connections = 0
        var checkedReplies = 0
        var failures: [String] = []
    }

    @Test func hundredThousandFuzzedMessagesLeaveDataIntactAndTheServerServing() throws {
        let seed = ProcessInfo.processInfo.environment["NBD_FUZZ_SEED"].flatMap { UInt64($0) } ?? 0x5EED_2026
        print("HostileInputTests seed: \(seed) (rerun with NBD_FUZZ_SEED=\(seed))")
        let scratch = MemoryExport(name: "scratch", size: Self.scratchSize)
        try withServer(size: 8 << 20, extraExports: [scratch]) { s in
            s.registry.defaultExportName = "scratch"
            let reference = [UInt8].pattern(1 << 20, seed: seed)
            let writer = try s.client()
            try writer.handshake(export: "zram0")
            #expect(try writer.write(offset: 3 << 20, reference) == 0)
            writer.disconnect()

            let tallies = Mutex<[Tally]>([])
            DispatchQueue.concurrentPerform(iterations: Self.workers) { w in
                var rng = Rng(x: (seed &+ UInt64(w) &* 0x9E37_79B9) | 1)
                var tally = Tally()
                while tally.messages < Self.messageTarget / Self.workers + 1 && tally.failures.count < 5 {
                    Self.oneConnection(s, &rng, &tally)
                    tally.connections += 1
                }
                let done = tally
                tallies.withLock { $0.append(done) }
            }
            let all = tallies.withLock { $0 }
            let messages = all.reduce(0) { $0 + $1.messages }
            let checked = all.reduce(0) { $0 + $1.checkedReplies }
            print("HostileInputTests: \(messages) messages on \(all.reduce(0) { $0 + $1.connections }) connections, \(checked) replies checked")
            for failure in all.flatMap(\.failures) { Issue.record("seed \(seed): \(failure)") }
            #expect(messages >= Self.messageTarget)
            #expect(checked >= Self.messageTarget / 2, "too few well-framed requests were checked (seed \(seed))")

            // Every fuzzing client has hung up: no connection thread may stay behind, stuck on
            // hostile input (bounded wait as a watchdog; threads finish asynchronously).
            for _ in 0..<3000 where s.server.connectionCount > 0 { usleep(10_000) }
            #expect(s.server.connectionCount == 0, "connections left behind by the fuzzing (seed \(seed))")
            #expect(s.server.replyBufferBytes == 0)

            let reader = try s.client()
            try reader.handshake(export: "zram0")
            #expect(try reader.structuredRead(offset: 3 << 20, length: 1 << 20).data == reference, "seed \(seed)")
            #expect(try reader.write(offset: 0, [1, 2, 3]) == 0)
            #expect(try reader.structuredRead(offset: 0, length: 3).data == [1, 2, 3])
            let plain = try s.client()
            try plain.handshake(export: "zram0", structured: false)
            #expect(try plain.simpleRead(offset: 3 << 20, length: 4096) == Array(reference[0..<4096]))
        }
    }

    /// One connection of a random kind.
    static func oneConnection(_ s: TestServer, _ rng: inout Rng, _ tally: inout Tally) {
        switch rng.below(20) {
        case 0, 1:  // garbage, sometimes after valid client flags
            let bytes = rng.below(2) == 0 ? rng.bytes(rng.below(200)) : [0, 0, 0, 3] + rng.bytes(rng.below(200))
            FuzzTests.fire(s, bytes, drainMilliseconds: 2)
            tally.messages += 1
        case 2, 3, 4:  // a long fuzzed option haggle
            var options = 0
            var bytes = fuzzedHandshake(&rng, options: &options)
            if rng.below(2) == 0 { FuzzTests.mutate(&bytes, &rng) }
            FuzzTests.fire(s, bytes, drainMilliseconds: 2)
            tally.messages += options
        case 5, 6:  // valid handshake, then a mutated request stream
            var handshake = FuzzTests.handshakeBytes(&rng)
            var requests = RequestStream(structured: true)
            for _ in 0..<50 + rng.below(200) { requests.append(&rng) }
            var stream = requests.bytes
            FuzzTests.mutate(&stream, &rng)
            handshake += stream
            FuzzTests.fire(s, handshake, drainMilliseconds: 2)
            tally.messages += 5 + requests.count
        default:  // valid handshake, then well-framed random requests whose replies are checked
            checkedConnection(s, &rng, &tally)
        }
    }

    /// Fixed-newstyle client flags and many options: valid, malformed, unknown and oversized.
    static func fuzzedHandshake(_ rng: inout Rng, options: inout Int) -> [UInt8] {
        var b: [UInt8] = []
        b.appendBE(rng.below(8) == 0 ? UInt32(truncatingIfNeeded: rng.next()) : UInt32(3))
        func option(_ code: UInt32, _ data: [UInt8]) {
            b.appendBE(NBDMagic.option)
            b.appendBE(code)
            b.appendBE(UInt32(data.count))
            b += data
            options += 1
        }
        let names = ["scratch", "", "zram0", "nope", String(repeating: "x", count: 300)]
        for _ in 0..<5 + rng.below(40) {
            let name = names[rng.below(names.count)]
            switch rng.below(12) {
            case 0: option(NBDOption.list.rawValue, rng.below(4) == 0 ? rng.bytes(rng.below(8)) : [])
            case 1: option(NBDOption.structuredReply.rawValue, rng.below(4) == 0 ? rng.bytes(1) : [])
            case 2: option(NBDOption.info.rawValue, RawClient.infoRequest(name: name, infos: (0..<rng.below(5)).map { _ in UInt16(rng.below(6)) }))
            case 3: option(NBDOption.listMetaContext.rawValue, RawClient.metaRequest(name: name, queries: rng.below(2) == 0 ? [] : ["base:", "base:allocation", "qemu:dirty"]))
            case 4: option(NBDOption.setMetaContext.rawValue, RawClient.metaRequest(name: name, queries: ["base:allocation"]))
            case 5: option(NBDOption.startTLS.rawValue, [])
            case 6: option(UInt32(rng.below(64)), rng.bytes(rng.below(64)))
            case 7: option(UInt32(truncatingIfNeeded: rng.next()), rng.bytes(rng.below(16)))
            case 8:  // a malformed INFO/GO or meta request: lengths that lie
                var d = rng.bytes(6 + rng.below(30))
                d.replaceSubrange(0..<4, with: [0, 0, UInt8(rng.below(256)), UInt8(rng.below(256))])
                option([NBDOption.info, .go, .setMetaContext, .listMetaContext][rng.below(4)].rawValue, d)
            case 9:  // an option header claiming a length it never sends, or a huge one
                b.appendBE(NBDMagic.option)
                b.appendBE(NBDOption.info.rawValue)
                b.appendBE(rng.below(2) == 0 ? UInt32(truncatingIfNeeded: rng.next()) : UInt32(rng.below(1 << 17)))
                options += 1
                return b
            case 10: option(NBDOption.peekExport.rawValue, [])
            default:
                b += rng.bytes(rng.below(24))  // bytes where an option header belongs
                options += 1
                return b
            }
        }
        if rng.below(2) == 0 { option(NBDOption.abort.rawValue, []) }
        return b
    }

    /// Well-framed requests with random commands, flags, ranges and lengths.
    struct RequestStream {
        let structured: Bool
        var bytes: [UInt8] = []
        var count = 0
        /// Cookie → expected data bytes after a successful simple reply (READ only).
        var simpleReadLength: [UInt64: Int] = [:]
        var cookies: Set<UInt64> = []

        init(structured: Bool) { self.structured = structured }

        mutating func append(_ rng: inout Rng) {
            let size = HostileInputTests.scratchSize
            let cookie = UInt64(count) &* 0x1_0001 &+ 7
            count += 1
            var type: UInt16
            switch rng.below(20) {
            case 0..<6: type = NBDCommand.read.rawValue
            case 6..<12: type = NBDCommand.write.rawValue
            case 12: type = NBDCommand.flush.rawValue
            case 13: type = NBDCommand.trim.rawValue
            case 14: type = NBDCommand.writeZeroes.rawValue
            case 15: type = NBDCommand.cache.rawValue
            case 16, 17: type = NBDCommand.blockStatus.rawValue
            default: type = UInt16(truncatingIfNeeded: rng.next())
            }
            if type == NBDCommand.disconnect.rawValue { type = NBDCommand.flush.rawValue }
            let flags: UInt16 = rng.below(6) == 0 ? UInt16(truncatingIfNeeded: rng.next()) : UInt16(rng.below(64)) & 0x3D
            // Mostly small; now and then past a connection buffer (256 KiB) or the whole export.
            var length: UInt32
            switch rng.below(400) {
            case 0..<20: length = 0
            case 20..<40: length = UInt32(truncatingIfNeeded: rng.next())
            case 40..<44: length = UInt32(200 << 10 + rng.below(400 << 10))
            case 44: length = UInt32(size)
            default: length = UInt32(1 + rng.below(rng.below(4) == 0 ? 40_000 : 4096))
            }
            let offset: UInt64
            switch rng.below(10) {
            case 0: offset = rng.next()
            case 1: offset = size - UInt64(rng.below(8192))
            case 2: offset = UInt64.max - UInt64(rng.below(4096))
            default: offset = UInt64(rng.below(Int(size)))
            }
            if type == NBDCommand.write.rawValue { length = min(length, UInt32(HostileInputTests.payloads.count)) }
            NBDRequest(flags: flags, type: type, cookie: cookie, offset: offset, length: length).encode(into: &bytes)
            if type == NBDCommand.write.rawValue { bytes += HostileInputTests.payloads[0..<Int(length)] }
            cookies.insert(cookie)
            // A simple reply to a READ that succeeds carries the data; only a valid READ succeeds.
            let dfAllowed = structured ? NBDCommandFlags.df.rawValue : 0
            let validRead =
                type == NBDCommand.read.rawValue && flags & ~(NBDCommandFlags.fua.rawValue | dfAllowed) == 0
                && UInt64(length) <= size && offset <= size - UInt64(length)
            if !structured && validRead { simpleReadLength[cookie] = Int(length) }
        }
    }

    /// Sends a well-framed stream and checks every reply while it goes, then DISC:
    /// exactly one complete reply per request, each well formed.
    static func checkedConnection(_ s: TestServer, _ rng: inout Rng, _ tally: inout Tally) {
        let structured = rng.below(4) != 0
        guard let c = try? s.client() else { return tally.failures.append("cannot connect") }
        do {
            try c.handshake(structured: structured, meta: rng.below(3) != 0)
        } catch {
            return tally.failures.append("handshake failed: \(error)")
        }
        var requests = RequestStream(structured: structured)
        for _ in 0..<100 + rng.below(900) { requests.append(&rng) }
        NBDRequest(type: NBDCommand.disconnect.rawValue, cookie: 0, offset: 0, length: 0).encode(into: &requests.bytes)
        var parser = ReplyParser(simpleReadLength: requests.simpleReadLength, pending: requests.cookies)
        if let failure = exchange(c.fd, requests.bytes, &parser) {
            tally.failures.append("\(failure) (structured: \(structured))")
        } else if !parser.pending.isEmpty {
            tally.failures.append("\(parser.pending.count) requests got no reply (structured: \(structured))")
        }
        tally.messages += 3 + requests.count
        tally.checkedReplies += parser.completed
    }

    /// Sends `bytes` and parses replies at the same time until the server closes; a failure's text.
    static func exchange(_ fd: Int32, _ bytes: [UInt8], _ parser: inout ReplyParser) -> String? {
        var sent = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN) | (sent < bytes.count ? Int16(POLLOUT) : 0), revents: 0)
            // A watchdog, not a threshold: a server that stops answering fails the test.
            guard poll(&pfd, 1, 30_000) > 0 else { return "server stopped answering" }
            if pfd.revents & Int16(POLLOUT) != 0 && sent < bytes.count {
                let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, min(bytes.count - sent, 1 << 18), Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
                if n > 0 { sent += n } else if n < 0 && errno != EAGAIN { return "send failed: \(String(cString: strerror(errno)))" }
            }
            if pfd.revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, Int32(MSG_DONTWAIT)) }
                if n == 0 { return sent == bytes.count ? parser.finish() : "server closed early" }
                if n < 0 {
                    if errno == EAGAIN || errno == EINTR { continue }
                    return "recv failed: \(String(cString: strerror(errno)))"
                }
                if let failure = parser.feed(buffer[0..<n]) { return failure }
            }
        }
    }

    /// Splits a reply stream into simple replies and structured chunks and checks their framing.
    struct ReplyParser {
        var simpleReadLength: [UInt64: Int]
        var pending: Set<UInt64>
        var completed = 0
        private var input: [UInt8] = []
        private var at = 0

        init(simpleReadLength: [UInt64: Int], pending: Set<UInt64>) {
            self.simpleReadLength = simpleReadLength
            self.pending = pending
        }

        mutating func feed(_ bytes: ArraySlice<UInt8>) -> String? {
            input += bytes
            while true {
                let available = input.count - at
                guard available >= 4 else { break }
                let magic = input.beU32(at)
                if magic == NBDMagic.simpleReply {
                    guard available >= 16 else { break }
                    let error = input.beU32(at + 4)
                    let cookie = input.beU64(at + 8)
                    guard pending.contains(cookie) else { return "simple reply to unknown cookie \(cookie)" }
                    let data = error == 0 ? simpleReadLength[cookie] ?? 0 : 0
                    guard available >= 16 + data else { break }
                    at += 16 + data
                    pending.remove(cookie)
                    completed += 1
                } else if magic == NBDMagic.structuredReply {
                    guard available >= 20 else { break }
                    let flags = input.beU16(at + 4)
                    let type = input.beU16(at + 6)
                    let cookie = input.beU64(at + 8)
                    let length = Int(input.beU32(at + 16))
                    guard pending.contains(cookie) else { return "chunk for unknown cookie \(cookie)" }
                    guard [0, 1, 2, 5, 32768, 32769].contains(type) else { return "unknown chunk type \(type)" }
                    guard available >= 20 + length else { break }
                    at += 20 + length
                    if flags & nbdReplyFlagDone != 0 {
                        pending.remove(cookie)
                        completed += 1
                    }
                } else {
                    return "bad reply magic \(String(magic, radix: 16)) at byte \(at)"
                }
            }
            if at > 1 << 20 {
                input.removeFirst(at)
                at = 0
            }
            return nil
        }

        func finish() -> String? {
            input.count == at ? nil : "\(input.count - at) bytes of a truncated reply"
        }
    }
}
