import Foundation
import Testing

@testable import ZnbdKit

/// An NBD client (nbdsh) that keeps one export open until `release()`, so that
/// the server must refuse to reset or remove that device (EBUSY).
final class ExportHolder {
    private let process = Process()

    /// Connects and returns once the server counts the connection on `export`.
    init(_ server: ZnbdServer, export: String = "zram0", sourceLocation: SourceLocation = #_sourceLocation) throws {
        // nbdsh needs the system Python, which has the nbd module, whatever python3 comes first on PATH.
        guard let nbdsh = ExternalCommand.which("nbdsh") else { throw ToolMissing(tool: "nbdsh") }
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["PATH=/usr/bin:/bin", nbdsh, "-u", server.uri(export), "-c", "import sys; sys.stdin.read()"]
        process.standardInput = Pipe()  // read() returns when release() closes it
        try process.run()
        let client = ControlClient(path: server.control)
        let attached = Poll.until(seconds: 30) {
            process.isRunning
                && ((try? client.status())?.devices.first { $0.name == export }?.connections ?? 0) > 0
        }
        guard attached else {
            release()
            throw HolderDidNotAttach(export: export)
        }
    }

    deinit { release() }

    /// Closes nbdsh's stdin (it disconnects and exits), killing it if it lingers.
    func release() {
        guard process.isRunning else { return }
        try? (process.standardInput as? Pipe)?.fileHandleForWriting.close()
        if !Poll.until(seconds: 10, { !process.isRunning }) { process.terminate() }
        process.waitUntilExit()
    }
}

struct HolderDidNotAttach: Error, CustomStringConvertible {
    var export: String
    var description: String { "nbdsh did not attach to \(export) within 30 s" }
}

/// Waiting on a condition instead of sleeping for a guessed time.
enum Poll {
    /// Checks `condition` every 10 ms until it holds (true) or `seconds` pass (false).
    static func until(seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            if condition() { return true }
            if Date() >= deadline { return false }
            usleep(10_000)
        }
    }
}
