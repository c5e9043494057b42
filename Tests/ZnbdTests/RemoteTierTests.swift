import Foundation
import NBDBacking
import SwiftZram
import Testing

@testable import ZnbdKit

/// One znbd as the remote tier of another: `NBDBackingStore` against `znbd serve`
/// over TCP with TLS (PSK), as a backing device URI names it.
@Suite(.serialized) struct RemoteTierTests {
    static func pages(_ count: Int, seed: UInt64) -> [UInt8] {
        var random = SplitMix64(seed: seed)
        return (0..<(count * 4096)).map { _ in UInt8(truncatingIfNeeded: random.next() >> 56) }
    }

    /// Array's closures rethrow untyped errors; the store's are ZramError.
    static func write(_ bytes: [UInt8], to store: some BackingStore, at offset: UInt64) throws {
        try bytes.withUnsafeBytes { try store.write($0, at: offset) }
    }

    static func read(from store: some BackingStore, count: Int, at offset: UInt64) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0xA5, count: count)
        try bytes.withUnsafeMutableBytes { try store.read(into: $0, at: offset) }
        return bytes
    }

    static func openError(_ uri: String) -> ZramError? {
        do {
            let store = try NBDBackingStore.open(uri)
            store.close()
            return nil
        } catch {
            return error
        }
    }

    @Test func znbdOverTLSStoresPagesForAnotherZnbd() throws {
        let credentials = try TLSTests.Credentials()
        defer { credentials.remove() }
        let port = try TLSTests.freePort()
        let server = try ZnbdServer([
            "--size", "64M", "--tcp", "\(port)", "--tls", "require", "--tls-psk", credentials.psk,
            "--tls-certificates", credentials.server,
        ])
        defer { server.stop() }

        let store = try NBDBackingStore.open("nbds://alice@127.0.0.1:\(port)/zram0?tls-psk-file=\(credentials.psk)")
        defer { store.close() }
        #expect(store.capacity == 64 << 20)
        #expect(store.canTrim)
        // Enough calls that every pooled connection does its own TLS handshake and carries data.
        let calls = store.connectionLimit * 2
        for index in 0..<calls {
            try Self.write(Self.pages(4, seed: UInt64(index)), to: store, at: UInt64(index) << 20)
        }
        for index in 0..<calls {
            #expect(try Self.read(from: store, count: 4 * 4096, at: UInt64(index) << 20) == Self.pages(4, seed: UInt64(index)))
        }
        // A trim frees the pages in the remote zram: they read back as zeros.
        store.discard(at: 4096, length: 2 * 4096)
        let afterTrim = try Self.read(from: store, count: 4 * 4096, at: 0)
        let original = Self.pages(4, seed: 0)
        #expect(afterTrim[0..<4096] == original[0..<4096])
        #expect(afterTrim[4096..<12288].allSatisfy { $0 == 0 })
        #expect(afterTrim[12288...] == original[12288...])

        // x509 instead of a PSK: the same export through libnbd's tls-certificates.
        let x509 = try NBDBackingStore.open("nbds://127.0.0.1:\(port)/zram0?tls-certificates=\(credentials.client)")
        #expect(try Self.read(from: x509, count: 4 * 4096, at: 1 << 20) == Self.pages(4, seed: 1))
        x509.close()

        // The server refuses plaintext and a wrong key; the store says EIO and nothing crashes.
        #expect(Self.openError("nbd://127.0.0.1:\(port)/zram0")?.kind == .ioError)
        #expect(Self.openError("nbds://alice@127.0.0.1:\(port)/zram0?tls-psk-file=\(credentials.wrongPSK)")?.kind == .ioError)
        #expect(Self.openError("nbds://alice@127.0.0.1:\(port)/zram9?tls-psk-file=\(credentials.psk)")?.kind == .ioError)
        #expect(server.isRunning)
    }
}
