import Foundation
import Testing

@testable import ZnbdKit
import NBD

/// `znbd serve --tls`: the built binary with libnbd's and qemu's clients over TCP,
/// and the start-up checks that keep an open TCP port from going out unprotected.
@Suite(.serialized) struct TLSTests {
    /// Throw-away credentials from Tests/tls/make-credentials.sh (psktool, certtool).
    struct Credentials {
        let directory: String
        var psk: String { directory + "/psk/keys.psk" }
        var wrongPSK: String { directory + "/psk-wrong/keys.psk" }
        var server: String { directory + "/server" }
        var client: String { directory + "/client" }

        init() throws {
            directory = try ZnbdServer.makeTemporaryDirectory()
            let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("tls/make-credentials.sh").path
            try ExternalCommand.require("bash", [script, directory])
        }

        func remove() { try? FileManager.default.removeItem(atPath: directory) }
    }

    /// A port that was free a moment ago on 127.0.0.1.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    func pskURI(_ port: Int, _ file: String) -> String { "nbds://alice@127.0.0.1:\(port)/zram0?tls-psk-file=\(file)" }

    @Test func requiredTLSServesPSKAndX509ClientsAndRefusesPlaintext() throws {
        let credentials = try Credentials()
        defer { credentials.remove() }
        let port = try Self.freePort()
        let server = try ZnbdServer([
            "--size", "64M", "--tcp", "\(port)", "--tls", "require",
            "--tls-psk", credentials.psk, "--tls-certificates", credentials.server,
        ])
        defer { server.stop() }

        let info = try ExternalCommand.require("nbdinfo", [pskURI(port, credentials.psk)])
        #expect(info.stdout.contains("with TLS"), "\(info.stdout)")
        let x509 = try ExternalCommand.require("nbdinfo", ["nbds://127.0.0.1:\(port)/zram0?tls-certificates=\(credentials.client)"])
        #expect(x509.stdout.contains("with TLS"), "\(x509.stdout)")

        // Data written over TLS reads back the same over TLS and over the Unix socket.
        let source = server.directory + "/source.bin", back = server.directory + "/back.bin"
        try ExternalCommand.require("bash", ["-c", "head -c 8M /dev/urandom > \(source); yes znbd | head -c 8M >> \(source)"])
        try ExternalCommand.require("nbdcopy", ["-C", "4", "--flush", source, pskURI(port, credentials.psk)])
        try ExternalCommand.require("nbdcopy", [pskURI(port, credentials.psk), back])
        try ExternalCommand.require("cmp", ["-n", "\(16 << 20)", source, back])
        try ExternalCommand.require("nbdcopy", [server.uri(), back])
        try ExternalCommand.require("cmp", ["-n", "\(16 << 20)", source, back])

        let qemu = try ExternalCommand.require("qemu-img", [
            "info", "--image-opts", "--object", "tls-creds-psk,id=tls0,dir=\(credentials.directory)/psk,username=alice,endpoint=client",
            "driver=nbd,host=127.0.0.1,port=\(port),export=zram0,tls-creds=tls0",
        ])
        #expect(qemu.stdout.contains("64 MiB"), "\(qemu.stdout)")

        let plain = try ExternalCommand.run("nbdinfo", ["nbd://127.0.0.1:\(port)/zram0"])
        #expect(!plain.succeeded, "a plaintext client was served under --tls require: \(plain)")
        let wrong = try ExternalCommand.run("nbdinfo", [pskURI(port, credentials.wrongPSK)])
        #expect(!wrong.succeeded, "a wrong PSK was accepted: \(wrong)")
        #expect(server.isRunning)
    }

    @Test func loopbackTCPWithoutTLSWarns() throws {
        let port = try Self.freePort()
        let server = try ZnbdServer(["--size", "16M", "--tcp", "\(port)"])
        defer { server.stop() }
        try ExternalCommand.require("nbdinfo", ["nbd://127.0.0.1:\(port)/zram0"])
        #expect(server.logText.contains("without TLS: every local user can read and overwrite the devices"), "\(server.logText)")
    }

    /// The refusal happens before anything is bound, so no non-loopback socket is ever opened here.
    @Test(arguments: ["0.0.0.0", "[::]", "192.0.2.1", "example.org"])
    func nonLoopbackTCPWithoutTLSRefusesToStart(_ host: String) throws {
        let directory = try ZnbdServer.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let result = try ExternalCommand.run(
            ZnbdServer.binary,
            ["serve", "--unix", directory + "/nbd.sock", "--control", directory + "/control.sock", "--no-mlock", "--tcp", "\(host):10809"],
            timeout: 10)
        #expect(!result.succeeded && !result.timedOut, "\(result)")
        #expect(result.stderr.contains("refusing TCP on \(host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))) without TLS"), "\(result)")
        #expect(result.stderr.contains("--insecure"), "\(result)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/nbd.sock"))
    }

    @Test func insecureOrTLSLetNonLoopbackTCPThrough() throws {
        let anywhere = try TCPAddress.parse("0.0.0.0:10809")
        #expect(anywhere.refusal(tls: .off, insecure: false) != nil)
        #expect(anywhere.refusal(tls: .off, insecure: true) == nil)
        #expect(anywhere.refusal(tls: .require, insecure: false) == nil)
        #expect(anywhere.refusal(tls: .on, insecure: false)?.contains("plaintext clients are still served") == true)
        #expect(anywhere.refusal(tls: .on, insecure: true) == nil)
        #expect(try TCPAddress.parse("10809").refusal(tls: .off, insecure: false) == nil)
        #expect(try TCPAddress.parse("[::1]:10809") == TCPAddress(host: "::1", port: 10809))
        #expect(anywhere.plaintextWarning(tls: .off)?.contains("anyone who can reach it") == true)
        #expect(anywhere.plaintextWarning(tls: .require) == nil)
        #expect(try TCPAddress.parse("10809").plaintextWarning(tls: .on)?.contains("plaintext clients too: every local user") == true)
    }

    static let loopback: [(String, Bool)] = [
        ("127.0.0.1", true), ("127.1.2.3", true), ("::1", true), ("::ffff:127.0.0.1", true), ("localhost", true),
        ("0.0.0.0", false), ("::", false), ("10.0.0.1", false), ("128.0.0.1", false), ("::2", false), ("example.org", false),
    ]

    @Test(arguments: loopback)
    func loopbackAddresses(_ host: String, _ isLoopback: Bool) {
        #expect(TCPAddress(host: host, port: 1).isLoopback == isLoopback)
    }

    static let inconsistent: [([String], String)] = [
        (["--tls", "require", "--tls-psk", "/k"], "--tls applies to the TCP listener"),
        (["--tcp", "10809", "--tls", "require"], "needs credentials"),
        (["--tcp", "10809", "--tls-psk", "/k"], "TLS is off"),
        (["--tcp", "10809", "--tls", "on", "--tls-psk", "/k", "--tls-verify-peer"], "verifying the peer needs an x509"),
        (["--tcp", "10809", "--tls", "always"], "always"),
        (["--tcp", "0.0.0.0:10809", "--tls", "on", "--tls-psk", "/k"], "with --tls on (plaintext clients are still served)"),
    ]

    @Test(arguments: inconsistent)
    func inconsistentTLSOptionsAreRefused(_ arguments: [String], _ expected: String) throws {
        let directory = try ZnbdServer.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let result = try ExternalCommand.run(
            ZnbdServer.binary,
            ["serve", "--unix", directory + "/nbd.sock", "--control", directory + "/control.sock", "--no-mlock"] + arguments,
            timeout: 10)
        #expect(!result.succeeded && !result.timedOut, "\(result)")
        #expect(result.stderr.contains(expected), "\(result)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/nbd.sock"))
    }

    @Test func unreadableCredentialsStopTheServerWithTheFileNamed() throws {
        let directory = try ZnbdServer.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let port = try Self.freePort()
        let result = try ExternalCommand.run(
            ZnbdServer.binary,
            [
                "serve", "--unix", directory + "/nbd.sock", "--control", directory + "/control.sock", "--no-mlock",
                "--size", "16M", "--tcp", "\(port)", "--tls", "require", "--tls-psk", directory + "/missing.psk",
            ], timeout: 10)
        #expect(!result.succeeded && !result.timedOut, "\(result)")
        #expect(result.stderr.contains("PSK file \(directory)/missing.psk: No such file or directory"), "\(result)")
    }
}
