import Testing
@testable import NBD

#if canImport(Glibc)
import Glibc
#endif

/// Random and mutated traffic at a live server; afterwards the data written
/// beforehand must be intact and the server must still serve.
@Suite struct FuzzTests {
    struct Rng {
        var x: UInt64
        mutating func next() -> UInt64 {
            x ^= x << 13
            x ^= x >> 7
            x ^= x << 17
            return x
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
        mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: next()) } }
    }

    /// A valid-looking handshake for the scratch export (the default in this test).
    static func handshakeBytes(_ rng: inout Rng) -> [UInt8] {
        var b: [UInt8] = []
        b.appendBE(UInt32(3))
        func opt(_ o: UInt32, _ d: [UInt8]) {
            b.appendBE(NBDMagic.option)
            b.appendBE(o)
            b.appendBE(UInt32(d.count))
            b += d
        }
        if rng.below(2) == 0 { opt(8, []) }
        if rng.below(2) == 0 { opt(10, RawClient.metaRequest(name: "scratch", queries: ["base:allocation"])) }
        if rng.below(3) == 0 { opt(3, []) }
        if rng.below(3) == 0 { opt(UInt32(rng.below(20)), rng.bytes(rng.below(40))) }
        opt(7, RawClient.infoRequest(name: "scratch", infos: [3]))
        return b
    }

    static func requestBytes(_ rng: inout Rng, size: UInt64) -> [UInt8] {
        var b: [UInt8] = []
        let type = rng.below(10) == 0 ? UInt16(truncatingIfNeeded: rng.next()) : UInt16(rng.below(9))
        let flags = rng.below(4) == 0 ? UInt16(truncatingIfNeeded: rng.next()) : UInt16(rng.below(32))
        let offset: UInt64 = [rng.next(), UInt64(rng.below(Int(size))), size - UInt64(rng.below(8192)), UInt64.max - UInt64(rng.below(4096))][rng.below(4)]
        let length: UInt32 = [UInt32(truncatingIfNeeded: rng.next()), UInt32(rng.below(70000)), 0][rng.below(3)]
        // DISC would end the connection early; make it rare.
        let t = type == 2 && rng.below(4) != 0 ? 0 : type
        NBDRequest(flags: flags, type: t, cookie: rng.next(), offset: offset, length: length).encode(into: &b)
        if t == 1 { b += rng.bytes(min(Int(length), rng.below(3) == 0 ? 70000 : Int(length) % 9000)) }
        return b
    }

    static func mutate(_ b: inout [UInt8], _ rng: inout Rng) {
        for _ in 0..<1 + rng.below(4) {
            guard !b.isEmpty else { return }
            switch rng.below(4) {
            case 0: b[rng.below(b.count)] ^= UInt8(1 << rng.below(8))
            case 1: b[rng.below(b.count)] = UInt8(truncatingIfNeeded: rng.next())
            case 2: b.removeLast(rng.below(min(b.count, 16)))
            default: b.insert(contentsOf: rng.bytes(rng.below(8)), at: rng.below(b.count))
            }
        }
    }

    /// Sends without blocking forever, drains what the server says, then hangs up.
    static func fire(_ s: TestServer, _ bytes: [UInt8], drainMilliseconds: Int32 = 5) {
        guard let c = try? s.client(timeoutSeconds: 1) else { return }
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send(c.fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            if n <= 0 {
                if errno == EAGAIN {
                    var pfd = pollfd(fd: c.fd, events: Int16(POLLOUT), revents: 0)
                    if poll(&pfd, 1, 200) <= 0 { break }
                    drain(c.fd, wait: 0)
                    continue
                }
                break
            }
            sent += n
        }
        drain(c.fd, wait: drainMilliseconds)
    }

    static func drain(_ fd: Int32, wait: Int32) {
        var buf = [UInt8](repeating: 0, count: 65536)
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while poll(&pfd, 1, wait) > 0 {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, 65536, Int32(MSG_DONTWAIT)) }
            if n <= 0 { return }
        }
    }

    @Test func randomAndMutatedTrafficLeavesDataIntact() throws {
        let scratch = MemoryExport(name: "scratch", size: 4 << 20)
        try withServer(size: 8 << 20, extraExports: [scratch]) { s in
            s.registry.defaultExportName = "scratch"
            let reference = [UInt8].pattern(1 << 20, seed: 2024)
            let writer = try s.client()
            try writer.handshake(export: "zram0")
            #expect(try writer.write(offset: 3 << 20, reference) == 0)
            writer.disconnect()

            var messages = 0
            let workers = 4
            let perWorker = 100
            let counts = Mutex<Int>(0)
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                var rng = Rng(x: 0x5EED_0000 &+ UInt64(w) &* 7919)
                var sentMessages = 0
                for _ in 0..<perWorker {
                    var bytes: [UInt8]
                    switch rng.below(4) {
                    case 0:  // pure garbage, sometimes after a valid greeting reply
                        bytes = rng.below(2) == 0 ? rng.bytes(rng.below(300)) : [0, 0, 0, 3] + rng.bytes(rng.below(300))
                        sentMessages += 1
                    case 1:  // mutated handshake
                        bytes = Self.handshakeBytes(&rng)
                        Self.mutate(&bytes, &rng)
                        sentMessages += 4
                    case 2:  // valid handshake, random requests
                        bytes = Self.handshakeBytes(&rng)
                        for _ in 0..<8 { bytes += Self.requestBytes(&rng, size: scratch.size) }
                        sentMessages += 12
                    default:  // valid handshake, mutated request stream
                        bytes = Self.handshakeBytes(&rng)
                        var reqs: [UInt8] = []
                        for _ in 0..<8 { reqs += Self.requestBytes(&rng, size: scratch.size) }
                        Self.mutate(&reqs, &rng)
                        bytes += reqs
                        sentMessages += 12
                    }
                    Self.fire(s, bytes)
                }
                counts.withLock { $0 += sentMessages }
            }
            messages = counts.withLock { $0 }
            #expect(messages > 2000)

            let reader = try s.client()
            try reader.handshake(export: "zram0")
            #expect(try reader.structuredRead(offset: 3 << 20, length: 1 << 20).data == reference)
            #expect(try reader.write(offset: 0, [1, 2, 3]) == 0)
            #expect(try reader.structuredRead(offset: 0, length: 3).data == [1, 2, 3])
            #expect(s.server.replyBufferBytes <= s.server.connectionCount * s.server.configuration.replyBufferSize)
        }
    }
}

import Dispatch
import Synchronization
