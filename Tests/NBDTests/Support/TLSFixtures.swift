import Foundation

/// Throw-away TLS credentials made by Tests/tls/make-credentials.sh (psktool, certtool)
/// in a fresh temporary directory; `remove()` deletes them.
struct TLSFixtures {
    let directory: String
    var pskFile: String { directory + "/psk/keys.psk" }
    var wrongPSKFile: String { directory + "/psk-wrong/keys.psk" }
    var serverCertificates: String { directory + "/server" }
    var clientCertificates: String { directory + "/client" }
    var rogueClientCertificates: String { directory + "/rogue-client" }

    static let script = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("tls/make-credentials.sh").path

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("nbdtls-\(UUID().uuidString)").path
        let made = try Tools.run("bash", [Self.script, directory], timeout: .seconds(60))
        guard made.status == 0 else {
            remove()
            throw ClientError("make-credentials.sh failed (install gnutls-bin for psktool and certtool): \(made.output)")
        }
    }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }
}
