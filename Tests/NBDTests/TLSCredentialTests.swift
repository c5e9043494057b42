import Foundation
import Testing

@testable import NBD

/// Loading TLS credentials: psktool's key files, the nbdkit/qemu x509 layout, and errors
/// that say which file is wrong and how.
@Suite struct TLSCredentialTests {
    @Test func psktoolKeyFileParses() throws {
        let fixtures = try TLSFixtures()
        defer { fixtures.remove() }
        let text = try String(contentsOfFile: fixtures.pskFile, encoding: .utf8)
        let keys = try PSKKeyFile(parsing: text, file: fixtures.pskFile).keys
        #expect(Array(keys.keys) == ["alice"])
        #expect(keys["alice"]?.count == 32)
    }

    @Test func keyFileToleratesBlankLinesAndCRLF() throws {
        let keys = try PSKKeyFile(parsing: "\n\nbob:00ff\r\n  \ncarol:A0b1\n", file: "f").keys
        #expect(keys == ["bob": [0x00, 0xff], "carol": [0xa0, 0xb1]])
    }

    static let badKeyFiles: [(String, String)] = [
        ("alice", "f line 1: expected username:hexkey"),
        ("bob:00\n:abcd", "f line 2: the username is empty"),
        ("alice:abc", "f line 1: the key of 'alice' is not an even number of hex digits"),
        ("alice:zz", "f line 1: the key of 'alice' is not an even number of hex digits"),
        ("alice:", "f line 1: the key of 'alice' is not an even number of hex digits"),
        ("alice:00\nalice:11", "f line 2: 'alice' appears twice"),
        ("\n  \n", "f: no keys"),
    ]

    @Test(arguments: badKeyFiles)
    func badKeyFilesNameTheLine(_ text: String, _ expected: String) {
        #expect {
            _ = try PSKKeyFile(parsing: text, file: "f")
        } throws: { error in
            "\(error)".hasPrefix(expected)
        }
    }

    @Test func bothKindsLoad() throws {
        let fixtures = try TLSFixtures()
        defer { fixtures.remove() }
        let credentials = try TLSCredentials(
            TLSConfiguration(mode: .require, certificatesDirectory: fixtures.serverCertificates, verifyPeer: true, pskFile: fixtures.pskFile))
        #expect(credentials.kinds == "x509+psk")
        #expect(credentials.key(for: "alice")?.count == 32)
        #expect(credentials.key(for: "mallory") == nil)
        #expect(credentials.warnings.isEmpty, "\(credentials.warnings)")
    }

    /// Loads with one change to a fresh fixture set and returns the error's text.
    func loadError(
        _ change: (TLSFixtures) throws -> Void, _ configure: (TLSFixtures) -> TLSConfiguration
    ) throws -> String {
        let fixtures = try TLSFixtures()
        defer { fixtures.remove() }
        try change(fixtures)
        do {
            _ = try TLSCredentials(configure(fixtures))
        } catch {
            return "\(error)"
        }
        Issue.record("loading succeeded")
        return ""
    }

    func x509(_ f: TLSFixtures, verify: Bool = false) -> TLSConfiguration {
        TLSConfiguration(mode: .on, certificatesDirectory: f.serverCertificates, verifyPeer: verify)
    }

    @Test func missingKeyIsNamed() throws {
        let text = try loadError({ try FileManager.default.removeItem(atPath: $0.serverCertificates + "/server-key.pem") }, { x509($0) })
        #expect(text.contains("server private key") && text.contains("server-key.pem: No such file or directory"), "\(text)")
    }

    @Test func keyOfAnotherCertificateIsNamed() throws {
        let text = try loadError(
            { f in
                try FileManager.default.removeItem(atPath: f.serverCertificates + "/server-key.pem")
                try FileManager.default.copyItem(atPath: f.clientCertificates + "/client-key.pem", toPath: f.serverCertificates + "/server-key.pem")
            }, { x509($0) })
        #expect(text.contains("server-key.pem does not belong to the certificate"), "\(text)")
    }

    @Test func garbageCertificateIsNamed() throws {
        let text = try loadError(
            { f in try "not a certificate\n".write(toFile: f.serverCertificates + "/server-cert.pem", atomically: true, encoding: .utf8) },
            { x509($0) })
        #expect(text.contains("server certificate") && text.contains("server-cert.pem"), "\(text)")
    }

    @Test func verifyingPeersNeedsTheCA() throws {
        let text = try loadError({ try FileManager.default.removeItem(atPath: $0.serverCertificates + "/ca-cert.pem") }, { x509($0, verify: true) })
        #expect(text.contains("CA certificate (needed to verify clients)") && text.contains("ca-cert.pem"), "\(text)")
    }

    @Test func missingDirectoryAndPSKFileAreNamed() throws {
        let dir = try loadError({ _ in }, { TLSConfiguration(mode: .on, certificatesDirectory: $0.directory + "/nope") })
        #expect(dir.contains("TLS certificates directory") && dir.contains("/nope: No such file or directory"), "\(dir)")
        let psk = try loadError({ _ in }, { TLSConfiguration(mode: .on, pskFile: $0.directory + "/nope.psk") })
        #expect(psk.contains("PSK file") && psk.contains("/nope.psk: No such file or directory"), "\(psk)")
    }

    @Test func secretsReadableByOthersAreWarnedAbout() throws {
        let fixtures = try TLSFixtures()
        defer { fixtures.remove() }
        chmod(fixtures.pskFile, 0o644)
        chmod(fixtures.serverCertificates + "/server-key.pem", 0o640)
        let credentials = try TLSCredentials(
            TLSConfiguration(mode: .on, certificatesDirectory: fixtures.serverCertificates, pskFile: fixtures.pskFile))
        #expect(credentials.warnings.count == 3, "\(credentials.warnings)")
        #expect(credentials.warnings.contains { $0.contains("keys.psk is readable by other users") })
        #expect(credentials.warnings.contains { $0.contains("server-key.pem is readable by other users") })
        #expect(credentials.warnings.contains { $0.contains("anyone can connect over TLS") })
    }

    static let inconsistent: [(TLSConfiguration, String)] = [
        (TLSConfiguration(mode: .on), "needs credentials"),
        (TLSConfiguration(mode: .require, verifyPeer: true, pskFile: "k"), "verifying the peer needs an x509"),
        (TLSConfiguration(mode: .off, pskFile: "k"), "TLS is off"),
        (TLSConfiguration(mode: .off, certificatesDirectory: "d"), "TLS is off"),
    ]

    @Test(arguments: inconsistent)
    func inconsistentConfigurationsAreRefused(_ configuration: TLSConfiguration, _ expected: String) {
        #expect(configuration.problem?.contains(expected) == true)
        #expect(TLSConfiguration(mode: .off).problem == nil)
    }
}
