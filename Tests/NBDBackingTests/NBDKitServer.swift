#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

/// An `nbdkit memory` child on a Unix socket in a private temporary directory. It
/// dies with the test process (`--exit-with-parent`); `stop()` (from a `defer`) ends
/// it and removes the directory.
final class NBDKitServer: @unchecked Sendable {  // used from one test at a time
    let directory: String
    let socket: String
    private let size: String
    private let extraArguments: [String]
    private var process: Process?

    static let inCI = ProcessInfo.processInfo.environment["CI"] == "true"
    static let path: String? = ["/usr/sbin/nbdkit", "/usr/bin/nbdkit"].first { (path: String) in access(path, X_OK) == 0 }
    /// Skips the suite without nbdkit on a developer's machine; with CI=true it runs and fails.
    static var trait: ConditionTrait {
        .enabled(if: path != nil || inCI, "nbdkit is not installed; with CI=true this is a failure")
    }

    /// Starts `nbdkit memory SIZE` (plus `arguments`, e.g. `-r`).
    init(size: String, arguments: [String] = []) throws {
        var template = Array("/tmp/znbd-nbdkit.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw POSIXError(.EIO) }
        directory = String(cString: made)
        socket = directory + "/nbd.sock"
        self.size = size
        extraArguments = arguments
        do {
            try start()
        } catch {
            stop()
            throw error
        }
    }

    deinit { stop() }

    /// The export's URI.
    var uri: String { "nbd+unix:///?socket=\(socket)" }

    /// Starts the server (again, after `kill()`), ready when its pidfile exists: nbdkit
    /// writes it once the socket listens.
    func start() throws {
        guard let path = Self.path else { throw NBDKitFailure(description: "nbdkit is not installed (CI=true: a failure)") }
        let pidfile = directory + "/nbdkit.pid"
        unlink(pidfile)
        unlink(socket)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["--foreground", "--exit-with-parent", "--unix", socket, "-P", pidfile]
            + extraArguments + ["memory", size]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        for _ in 0..<1000 where !FileManager.default.fileExists(atPath: pidfile) {
            guard process.isRunning else { throw NBDKitFailure(description: "nbdkit exited at start") }
            usleep(10_000)
        }
        guard FileManager.default.fileExists(atPath: pidfile) else {
            throw NBDKitFailure(description: "nbdkit wrote no pidfile in 10 s")
        }
    }

    /// Kills the server at once, as a crash would.
    func kill() {
        guard let process else { return }
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        self.process = nil
    }

    func stop() {
        kill()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

struct NBDKitFailure: Error, CustomStringConvertible { var description: String }
