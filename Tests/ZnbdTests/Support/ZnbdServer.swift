import Foundation
import Testing

@testable import ZnbdKit

/// A `znbd serve` child process on sockets in a private temporary directory.
/// `stop()` (or deinit) ends it and removes the directory.
final class ZnbdServer: @unchecked Sendable {  // used from one test at a time
    let directory: String
    let socket: String
    let control: String
    let log: String
    private let process: Process

    /// The built `znbd` next to the test bundle.
    static var binary: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        // The runner may be inside the .xctest bundle directory.
        for _ in 0..<3 {
            let candidate = dir.appendingPathComponent("znbd").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return "znbd"
    }

    /// The FUSE export is mounted (at `fuseDirectory`) only when `fuse` is set, so that
    /// the many tests that do not need it leave no mount behind when they are killed.
    init(_ arguments: [String] = [], fuse: Bool = false, sourceLocation: SourceLocation = #_sourceLocation) throws {
        directory = try Self.makeTemporaryDirectory()
        socket = directory + "/nbd.sock"
        control = directory + "/control.sock"
        log = directory + "/server.log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["serve", "--unix", socket, "--control", control, "--no-mlock"] + (fuse ? [] : ["--no-fuse"])
            // A FUSE export uses /dev/fuse unless the test asks for the ring (auto would follow the host).
            + (fuse && !arguments.contains("--fuse-ring") ? ["--fuse-ring", "off"] : []) + arguments
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardError = process.standardOutput
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Ready when the control socket answers: the server listens on its NBD socket first.
        let client = ControlClient(path: control)
        let process = process
        let ready = Poll.until(seconds: 20) { !process.isRunning || (try? client.status()) != nil }
        guard ready && process.isRunning else {
            let output = logText
            stop()
            throw ServerDidNotStart(log: output)
        }
    }

    deinit { stop() }

    /// Where the server mounts its FUSE export (beside the control socket).
    var fuseDirectory: String { directory + "/fuse" }

    var logText: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    var isRunning: Bool { process.isRunning }

    /// `nbd+unix:///EXPORT?socket=PATH`.
    func uri(_ export: String = "zram0") -> String { "nbd+unix:///\(export)?socket=\(socket)" }

    /// Runs `znbd ARGS --control PATH`.
    func cli(_ arguments: [String], timeout: Double = 60) throws -> CommandResult {
        try ExternalCommand.run(Self.binary, arguments + ["--control", control], timeout: timeout)
    }

    /// Sends `signal` to the server.
    var pid: Int32 { process.processIdentifier }

    func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Waits up to `seconds` for the server to exit: its exit status (128 + N after
    /// signal N), or nil when it still runs.
    func waitForExit(seconds: Double) -> Int32? {
        guard Poll.until(seconds: seconds, { !process.isRunning }) else { return nil }
        process.waitUntilExit()
        return process.terminationReason == .exit ? process.terminationStatus : 128 + process.terminationStatus
    }

    /// SIGTERM (again if the server waits for attached clients), then SIGKILL after 10 s;
    /// returns the exit status.
    @discardableResult
    func stop() -> Int32? {
        var status: Int32?
        if process.isRunning {
            process.terminate()
            let deadline = Date().addingTimeInterval(10)
            var repeated = false
            while process.isRunning && Date() < deadline {
                if !repeated && logText.contains("still serving") {
                    process.terminate()  // a client is still attached: the second signal stops at once
                    repeated = true
                }
                usleep(10_000)
            }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            status = process.terminationStatus
        }
        try? FileManager.default.removeItem(atPath: directory)
        return status
    }

    static func makeTemporaryDirectory() throws -> String {
        var template = Array("/tmp/znbd-test-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        return String(cString: made)
    }
}

struct ServerDidNotStart: Error, CustomStringConvertible {
    var log: String
    var description: String { "znbd serve did not start:\n\(log)" }
}
