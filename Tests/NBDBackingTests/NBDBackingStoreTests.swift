#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization
import Testing
import NBDBacking
import SwiftZram

/// Writes `bytes` at `offset` (Array's closures rethrow untyped errors).
func writeBytes(_ bytes: [UInt8], to store: some BackingStore, at offset: UInt64) throws(ZramError) {
    var failure: ZramError?
    bytes.withUnsafeBytes { buffer in
        do throws(ZramError) { try store.write(buffer, at: offset) } catch { failure = error }
    }
    if let failure { throw failure }
}

func readBytes(_ bytes: inout [UInt8], from store: some BackingStore, at offset: UInt64) throws(ZramError) {
    var failure: ZramError?
    bytes.withUnsafeMutableBytes { buffer in
        do throws(ZramError) { try store.read(into: buffer, at: offset) } catch { failure = error }
    }
    if let failure { throw failure }
}

/// `NBDBackingStore` against `nbdkit memory` over a Unix socket: round trips, trim,
/// the export's size, URIs it refuses, and a server killed and restarted under it.
@Suite(NBDKitServer.trait) struct NBDBackingStoreTests {
    /// `pages` pages from a fixed-seed generator.
    static func pattern(pages: Int, seed: UInt64) -> [UInt8] {
        var state = seed
        return (0..<(pages * 4096)).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt8(truncatingIfNeeded: state >> 33)
        }
    }

    static func expectError(
        _ kind: ZramError.Kind, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws(ZramError) -> Void
    ) {
        do {
            try body()
            Issue.record("expected \(kind), nothing was thrown", sourceLocation: sourceLocation)
        } catch {
            #expect(error.kind == kind, "\(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func pagesReadBackAsWrittenOnEveryConnection() throws {
        let server = try NBDKitServer(size: "16M")
        defer { server.stop() }
        let store = try NBDBackingStore.open(server.uri)
        defer { store.close() }
        #expect(store.capacity == 16 << 20)
        #expect(store.name == server.uri)
        // More requests than connections, so every connection of the pool carries some.
        let requests = store.connectionLimit * 3
        for index in 0..<requests {
            let bytes = Self.pattern(pages: 2, seed: UInt64(index))
            try writeBytes(bytes, to: store, at: UInt64(index) * 8192)
        }
        for index in (0..<requests).reversed() {
            var read = [UInt8](repeating: 0, count: 8192)
            try readBytes(&read, from: store, at: UInt64(index) * 8192)
            #expect(read == Self.pattern(pages: 2, seed: UInt64(index)), "request \(index)")
        }
    }

    @Test func parallelCallsFromSeveralThreadsStayApart() throws {
        let server = try NBDKitServer(size: "16M")
        defer { server.stop() }
        let store = try NBDBackingStore.open(server.uri)
        defer { store.close() }
        let threads = 8, rounds = 32
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            for round in 0..<rounds {
                let seed = UInt64(thread * 1000 + round)
                let offset = UInt64(thread * rounds + round) * 4096
                let bytes = Self.pattern(pages: 1, seed: seed)
                var read = [UInt8](repeating: 0, count: 4096)
                do {
                    try writeBytes(bytes, to: store, at: offset)
                    try readBytes(&read, from: store, at: offset)
                } catch {
                    failures.withLock { $0.append("\(thread)/\(round): \(error)") }
                    continue
                }
                if read != bytes { failures.withLock { $0.append("\(thread)/\(round): wrong bytes") } }
            }
        }
        #expect(failures.withLock { $0 } == [])
    }

    @Test func trimZeroesTheRange() throws {
        let server = try NBDKitServer(size: "1M")
        defer { server.stop() }
        let store = try NBDBackingStore.open(server.uri)
        defer { store.close() }
        #expect(store.canTrim)
        let bytes = Self.pattern(pages: 4, seed: 7)
        try writeBytes(bytes, to: store, at: 0)
        store.discard(at: 4096, length: 8192)
        var read = [UInt8](repeating: 1, count: 4 * 4096)
        try readBytes(&read, from: store, at: 0)
        #expect(read[0..<4096] == bytes[0..<4096])
        #expect(read[4096..<12288].allSatisfy { $0 == 0 }, "nbdkit memory reads a trimmed range as zeros")
        #expect(read[12288...] == bytes[12288...])
    }

    /// As the kernel with a backing block device: an export smaller than disksize is
    /// kept (writeback runs out of room later), one under a page is refused.
    @Test func theExportsSizeIsItsCapacity() throws {
        let small = try NBDKitServer(size: "1M")
        defer { small.stop() }
        let store = try NBDBackingStore.open(small.uri)
        defer { store.close() }
        try store.prepare(capacity: 64 << 20)
        #expect(store.capacity == 1 << 20)
        let page = [UInt8](repeating: 9, count: 4096)
        Self.expectError(.ioError) { () throws(ZramError) in
            try writeBytes(page, to: store, at: 1 << 20)
        }

        let tiny = try NBDKitServer(size: "2048")
        defer { tiny.stop() }
        Self.expectError(.invalidArgument) { () throws(ZramError) in _ = try NBDBackingStore.open(tiny.uri) }
    }

    @Test func aReadOnlyExportIsRefused() throws {
        let server = try NBDKitServer(size: "1M", arguments: ["-r"])
        defer { server.stop() }
        Self.expectError(.invalidArgument) { () throws(ZramError) in _ = try NBDBackingStore.open(server.uri) }
    }

    @Test(arguments: [
        "nbd+unix:///", "nbd:// bad uri", "nbd://[::1", "nbd+vsock:///", "nbdx://host",
    ])
    func aMalformedOrUnsupportedURIIsInvalid(uri: String) {
        Self.expectError(.invalidArgument) { () throws(ZramError) in _ = try NBDBackingStore.open(uri) }
    }

    @Test func anUnreachableServerIsAnIOError() throws {
        let server = try NBDKitServer(size: "1M")
        let uri = server.uri
        server.stop()
        Self.expectError(.ioError) { () throws(ZramError) in _ = try NBDBackingStore.open(uri) }
        Self.expectError(.ioError) { () throws(ZramError) in _ = try NBDBackingStore.open("nbd://127.0.0.1:1/") }
    }

    /// A server that accepts and never speaks fails the open at the connect timeout
    /// instead of holding the caller (a control thread) forever.
    @Test func aServerThatNeverSpeaksTimesOut() throws {
        let directory = NSTemporaryDirectory() + "silent-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/s"
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        try #require(listener >= 0)
        defer { close(listener) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { p in
            for (i, b) in path.utf8.enumerated() { p[i] = b }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        // Listening, never accepting: the kernel completes connects into the backlog, then nothing.
        try #require(bound == 0 && listen(listener, 8) == 0)
        Self.expectError(.ioError) { () throws(ZramError) in
            _ = try NBDBackingStore.open("nbd+unix:///?socket=\(path)", connectTimeout: .milliseconds(300))
        }
    }

    /// Calls racing close() end in EIO or succeed; none reconnects after it or crashes.
    @Test func callsAfterCloseAreIOErrors() throws {
        let server = try NBDKitServer(size: "1M")
        defer { server.stop() }
        let store = try NBDBackingStore.open(server.uri)
        let page = Self.pattern(pages: 1, seed: 3)
        DispatchQueue.concurrentPerform(iterations: 5) { thread in
            if thread == 0 {
                store.close()
                return
            }
            for round in 0..<50 {
                do throws(ZramError) {
                    try writeBytes(page, to: store, at: UInt64(round % 16) * 4096)
                } catch {
                    #expect(error.kind == .ioError && error.message.hasSuffix("after close"), "\(error)")
                }
            }
        }
        Self.expectError(.ioError) { () throws(ZramError) in try writeBytes(page, to: store, at: 0) }
        store.close()
    }

    /// A crash of the server fails the requests that meet it with EIO; once it is back,
    /// the next call reconnects and succeeds. Nothing crashes or hangs in between.
    @Test func aKilledServerIsEIOThenTheStoreReconnects() throws {
        let server = try NBDKitServer(size: "1M")
        defer { server.stop() }
        let store = try NBDBackingStore.open(server.uri)
        defer { store.close() }
        let bytes = Self.pattern(pages: 1, seed: 11)
        // Every connection of the pool is open before the crash.
        for index in 0..<store.connectionLimit {
            try writeBytes(bytes, to: store, at: UInt64(index) * 4096)
        }

        server.kill()
        var read = [UInt8](repeating: 0, count: 4096)
        for attempt in 0..<(2 * store.connectionLimit) {
            Self.expectError(.ioError) { () throws(ZramError) in
                try readBytes(&read, from: store, at: 0)
            }
            _ = attempt
        }

        try server.start()
        // The restarted nbdkit memory export is empty; the first call after it succeeds.
        try writeBytes(bytes, to: store, at: 8192)
        for index in 0..<store.connectionLimit {
            try readBytes(&read, from: store, at: 8192)
            #expect(read == bytes, "connection \(index) after the restart")
        }
    }
}
