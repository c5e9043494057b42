import Dispatch
import Foundation
import Logging
import Synchronization
import Testing
@testable import NBD

#if canImport(Glibc)
import Glibc
#endif

/// Listeners, the export registry and shutdown.
@Suite struct ServerLifecycleTests {
    @Test func unixSocketIsPrivateAndRemovedOnShutdown() throws {
        let s = try TestServer()
        var st = stat()
        #expect(stat(s.socketPath, &st) == 0)
        #expect(st.st_mode & 0o777 == 0o600)
        #expect(st.st_mode & S_IFMT == S_IFSOCK)
        s.server.shutdown()
        #expect(access(s.socketPath, F_OK) != 0)
        s.stop()
    }

    /// The socket's 0600 must not come from a process-wide umask change: other
    /// threads (and children they spawn) would create files with that umask.
    @Test func bindingAUnixSocketLeavesTheUmaskAlone() throws {
        let s = try TestServer()
        defer { s.stop() }
        let path = s.directory + "/umask.sock"
        let done = Atomic<Bool>(false)
        let seen = Mutex<Set<String>>([])
        let watcher = Thread {
            while !done.load(ordering: .acquiring) {
                guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { continue }
                for line in status.split(separator: "\n") where line.hasPrefix("Umask:") {
                    _ = seen.withLock { $0.insert(String(line.dropFirst(6).trimmingCharacters(in: .whitespaces))) }
                }
            }
        }
        watcher.start()
        for _ in 0..<300 {
            let listener = try Listener.unix(path: path)
            var st = stat()
            #expect(stat(path, &st) == 0 && st.st_mode & 0o777 == 0o600)
            try listener.start { close($0) }
            listener.stop()
            unlink(path)
        }
        done.store(true, ordering: .releasing)
        while !watcher.isFinished { usleep(1000) }
        let umasks = seen.withLock { $0 }
        #expect(umasks.count == 1, "the process umask changed while binding: \(umasks.sorted())")
    }

    @Test func refusesToReplaceANonSocket() throws {
        let s = try TestServer()
        defer { s.stop() }
        let path = s.directory + "/plain"
        let fd = open(path, O_CREAT | O_WRONLY, 0o600)
        close(fd)
        defer { unlink(path) }
        let server = NBDServer(configuration: .init(unixSocketPath: path), exports: s.registry, logger: Logger(label: "t"))
        let error = #expect(throws: NBDServerError.self) { try server.start() }
        #expect(error?.description == "\(path) exists and is not a socket")
        #expect(access(path, F_OK) == 0)
    }

    /// Issue 10 D2: a taken TCP port used to hang `start()` forever (it stopped a
    /// Unix listener whose accept thread never started, and waited for it).
    @Test func takenTCPPortThrowsAReadableErrorAndLeavesNothingListening() throws {
        let s = try TestServer()
        defer { s.stop() }
        let (taken, port) = try Self.listeningTCPSocket()
        defer { close(taken) }
        let path = s.directory + "/second.sock"
        let server = NBDServer(
            configuration: .init(unixSocketPath: path, tcpPort: port), exports: s.registry, logger: Logger(label: "t"))
        let outcome = Mutex<Result<Void, NBDServerError>?>(nil)
        let returned = DispatchSemaphore(value: 0)
        Thread {
            let result = Result { () throws(NBDServerError) in try server.start() }
            outcome.withLock { $0 = result }
            returned.signal()
        }.start()
        // A watchdog, not a timing threshold: a hang fails the test instead of hanging the suite.
        guard returned.wait(timeout: .now() + .seconds(120)) == .success else {
            Issue.record("NBDServer.start() did not return with its TCP port taken")
            return
        }
        guard case .failure(let error) = try #require(outcome.withLock { $0 }) else {
            Issue.record("start() succeeded on a taken port")
            server.shutdown()
            return
        }
        #expect(error.description == "cannot listen on tcp:127.0.0.1:\(port): bind: Address already in use (errno \(EADDRINUSE))")
        #expect(access(path, F_OK) != 0, "the Unix socket of a server that failed to start is left behind")
        #expect(server.connectionCount == 0)
    }

    /// A listening TCP socket on an ephemeral loopback port, and the port.
    static func listeningTCPSocket() throws -> (Int32, Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { a in
                bind(fd, a, length) == 0 && listen(fd, 1) == 0 && getsockname(fd, a, &length) == 0
            }
        }
        guard ok else {
            close(fd)
            throw ClientError("cannot take a TCP port: \(String(cString: strerror(errno)))")
        }
        return (fd, Int(UInt16(bigEndian: addr.sin_port)))
    }

    @Test func stoppingAListenerThatNeverStartedReturns() throws {
        let s = try TestServer()
        defer { s.stop() }
        let listener = try Listener.unix(path: s.directory + "/never-started.sock")
        let returned = DispatchSemaphore(value: 0)
        Thread {
            listener.stop()
            returned.signal()
        }.start()
        #expect(returned.wait(timeout: .now() + .seconds(120)) == .success, "stop() waited for an accept thread that never ran")
        unlink(s.directory + "/never-started.sock")
    }

    @Test func tcpOnLoopbackWithEphemeralPort() throws {
        try withServer(tcp: true) { s in
            let port = try #require(s.server.boundTCPPort)
            #expect(port > 0)
            let c = try RawClient(tcpPort: port)
            try c.handshake()
            #expect(try c.write(offset: 0, [4, 5, 6]) == 0)
            #expect(try c.structuredRead(offset: 0, length: 3).data == [4, 5, 6])
        }
    }

    @Test func exportsComeAndGoAtRuntime() throws {
        try withServer { s in
            let hot = MemoryExport(name: "zram7", size: 4 << 20)
            #expect(throws: ClientError.self) { try s.client().handshake(export: "zram7") }
            #expect(s.registry.add(hot))
            #expect(!s.registry.add(MemoryExport(name: "zram7", size: 1)))
            let c = try s.client()
            try c.handshake(export: "zram7")
            #expect(try c.write(offset: 0, [1]) == 0)
            #expect(s.server.connectionCount(export: "zram7") == 1)
            #expect(hot.attached.load(ordering: .relaxed) == 1)
            #expect(s.registry.remove(named: "zram7") === hot)
            // Attached clients keep working until cut off.
            #expect(try c.write(offset: 1, [2]) == 0)
            s.server.disconnectClients(export: "zram7")
            #expect(c.isClosedByServer())
            for _ in 0..<200 where s.server.connectionCount(export: "zram7") > 0 { usleep(10_000) }
            #expect(s.server.connectionCount(export: "zram7") == 0)
            #expect(hot.attached.load(ordering: .relaxed) == 0)
            #expect(throws: ClientError.self) { try s.client().handshake(export: "zram7") }
            s.registry.defaultExportName = "zram9"
            #expect(s.registry.lookup("") == nil)
        }
    }

    @Test func hundredsOfIdleConnectionsDoNotStallOthers() throws {
        try withServer { s in
            var idle: [RawClient] = []
            for i in 0..<300 {
                let c = try s.client()
                try c.handshake(structured: i % 2 == 0)
                idle.append(c)
            }
            // Silent handshakes up to the cap (the greeting shows each was admitted).
            for _ in 0..<s.server.configuration.maxHandshakesPerListener - 1 {
                let c = try s.client()
                try c.readGreeting()
                idle.append(c)
            }
            let c = try s.connected()
            for i in 0..<100 { #expect(try c.write(offset: UInt64(i) * 512, [UInt8](repeating: 1, count: 512)) == 0) }
            #expect(try c.structuredRead(offset: 0, length: 512).data == [UInt8](repeating: 1, count: 512))
            #expect(s.server.connectionCount == idle.count + 1)
            s.server.shutdown()
            #expect(s.server.connectionCount == 0)
            for c in idle { #expect(c.isClosedByServer()) }
        }
    }

    @Test func shutdownAnswersRequestsAlreadyReceived() throws {
        let s = try TestServer()
        let c = try s.connected(structured: false)
        var b: [UInt8] = []
        for i in 0..<50 {
            NBDRequest(type: 1, cookie: UInt64(i), offset: UInt64(i) * 4096, length: 4096).encode(into: &b)
            b += [UInt8](repeating: 3, count: 4096)
        }
        try c.send(b)
        usleep(100_000)
        s.server.shutdown()
        for _ in 0..<50 { #expect(try c.readSimpleReply().0 == 0) }
        #expect(c.isClosedByServer())
        s.stop()
    }
}
