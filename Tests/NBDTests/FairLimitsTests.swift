import Testing
@testable import NBD

#if canImport(Glibc)
import Glibc
#endif

/// Issue 10 C2 and C3: clients of one listener cannot lock out another, silent
/// handshakes cannot use up a budget, and a client that never reads its replies
/// holds no more than its own reply budget.
@Suite struct FairLimitsTests {
    static let tcpBudget = 24
    static let handshakeCap = 8

    /// C2: the TCP listener full of idle established connections and silent handshakes
    /// beyond the cap; a Unix client still gets in, and the established TCP clients still work.
    @Test func tcpClientsCannotLockOutTheUnixSocket() throws {
        try withServer(tcp: true, configure: { c in
            c.maxConnectionsPerListener = Self.tcpBudget
            c.maxHandshakesPerListener = Self.handshakeCap
        }) { s in
            let port = try #require(s.server.boundTCPPort)
            let established = Self.tcpBudget - Self.handshakeCap
            var idle: [RawClient] = []
            for _ in 0..<established {
                let c = try RawClient(tcpPort: port)
                try c.handshake()
                // A round trip: the server has surely left the handshake with this one.
                #expect(try c.command(.flush, offset: 0, length: 0) == 0)
                idle.append(c)
            }
            // Silent clients: the first `handshakeCap` fill the TCP handshake slots (and with
            // them the TCP budget); the rest are closed at once.
            var silent: [RawClient] = []
            for _ in 0..<Self.handshakeCap + 4 { silent.append(try RawClient(tcpPort: port)) }
            for c in silent[..<Self.handshakeCap] { _ = try c.readGreeting() }
            for c in silent[Self.handshakeCap...] { #expect(c.isClosedByServer(), "a handshake beyond the cap was admitted") }
            let load = s.server.core.load(of: .tcp)
            #expect(load.open == Self.tcpBudget)
            #expect(load.handshaking <= Self.handshakeCap)
            let overBudget = try RawClient(tcpPort: port)
            #expect(overBudget.isClosedByServer(), "a TCP connection beyond the listener's budget was admitted")

            // The Unix socket has budgets of its own.
            let unix = try s.connected()
            #expect(try unix.write(offset: 8192, [9, 8, 7]) == 0)
            #expect(try unix.structuredRead(offset: 8192, length: 3).data == [9, 8, 7])
            // Established connections are unaffected by the caps and never timed out.
            for (i, c) in idle.enumerated() {
                #expect(try c.write(offset: UInt64(i) * 4096, [UInt8(i)]) == 0)
            }
        }
    }

    /// C2: silent handshakes on the Unix socket's own cap do not stop established clients.
    @Test func silentHandshakesBeyondTheCapLeaveEstablishedClientsServing() throws {
        try withServer(configure: { $0.maxHandshakesPerListener = Self.handshakeCap }) { s in
            let established = try s.connected()
            #expect(try established.command(.flush, offset: 0, length: 0) == 0)
            var silent: [RawClient] = []
            for _ in 0..<Self.handshakeCap { silent.append(try s.client()) }
            for c in silent { _ = try c.readGreeting() }
            #expect(try s.client().isClosedByServer(), "a handshake beyond the cap was admitted")
            #expect(try established.write(offset: 0, [1, 2, 3]) == 0)
            #expect(try established.structuredRead(offset: 0, length: 3).data == [1, 2, 3])
            silent.removeAll()
            // The slots come back when the silent clients leave.
            var joined: RawClient?
            for _ in 0..<1000 where joined == nil {
                let c = try s.client()
                if (try? c.handshake()) != nil { joined = c } else { usleep(10_000) }
            }
            let late = try #require(joined, "handshake slots never came back")
            #expect(try late.structuredRead(offset: 0, length: 3).data == [1, 2, 3])
        }
    }

    /// C3: clients that queue large reads and never read the replies. Each of their
    /// connections stalls on its own reply buffer (backpressure); another client's large
    /// read still succeeds and the bytes held in reply buffers stay within the budget.
    @Test func greedyReadersStallOnlyThemselves() throws {
        try withServer(size: 64 << 20) { s in
            let pattern = [UInt8].pattern(16 << 20, seed: 7)
            try pattern.withUnsafeBytes { try s.export.write($0, at: 0) }
            let budget = s.server.configuration.replyBufferSize
            var greedy: [RawClient] = []
            for _ in 0..<20 {
                let c = try s.connected(structured: false)
                for k in 0..<4 { try c.sendRequest(.read, cookie: UInt64(k), offset: 0, length: 64 << 20) }
                // The first reply began: the server is serving these reads.
                let (error, cookie) = try c.readSimpleReply()
                #expect(error == 0 && cookie == 0)
                greedy.append(c)
            }
            #expect(s.server.replyBufferBytes <= s.server.connectionCount * budget)
            let other = try s.connected(structured: false)
            #expect(try other.simpleRead(offset: 0, length: pattern.count) == pattern)
            let structured = try s.connected()
            #expect(try structured.structuredRead(offset: 0, length: pattern.count).data == pattern)
            #expect(s.server.replyBufferBytes <= s.server.connectionCount * budget)
            #expect(s.server.connectionCount == 22)
            greedy.removeAll()
            for _ in 0..<6000 where s.server.connectionCount > 2 { usleep(10_000) }
            #expect(s.server.connectionCount == 2)
            #expect(s.server.replyBufferBytes == 2 * budget)
        }
    }

    /// A read whose export fails after part of its reply went out cannot be answered with
    /// an error any more: the server disconnects (as the protocol requires) and serves others.
    @Test func readFailingAfterItsReplyBeganDisconnects() throws {
        try withServer { s in
            s.export.failingPage.store(1 << 20, ordering: .relaxed)
            let simple = try s.connected(structured: false)
            try simple.sendRequest(.read, cookie: 1, offset: 0, length: 2 << 20)
            let (error, _) = try simple.readSimpleReply()
            #expect(error == 0)
            #expect(simple.isClosedByServer())
            let fragmentless = try s.connected()
            try fragmentless.sendRequest(.read, flags: NBDCommandFlags.df.rawValue, cookie: 2, offset: 0, length: 2 << 20)
            #expect(fragmentless.isClosedByServer())
            let other = try s.connected()
            #expect(try other.structuredRead(offset: 0, length: 4096).data == [UInt8](repeating: 0, count: 4096))
        }
    }
}
