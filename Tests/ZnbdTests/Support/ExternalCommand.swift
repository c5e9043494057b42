import Foundation
import Testing

/// The result of running a command to completion.
struct CommandResult: CustomStringConvertible {
    var status: Int32
    var stdout: String
    var stderr: String
    var timedOut: Bool

    var succeeded: Bool { status == 0 && !timedOut }
    var description: String {
        "exit \(status)\(timedOut ? " (timed out)" : "")\nstdout: \(stdout.suffix(2000))\nstderr: \(stderr.suffix(2000))"
    }
}

enum ExternalCommand {
    /// Finds a tool on PATH (and the sbin directories, which root's tools live in).
    static func which(_ tool: String) -> String? {
        if tool.hasPrefix("/") { return FileManager.default.isExecutableFile(atPath: tool) ? tool : nil }
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "") + ":/usr/sbin:/sbin:/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(tool)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Runs `tool` with `arguments`, output captured through temporary files (no pipe deadlocks),
    /// killing it after `timeout` seconds.
    static func run(_ tool: String, _ arguments: [String], timeout: Double = 120, input: String? = nil) throws -> CommandResult {
        guard let executable = which(tool) else {
            throw ToolMissing(tool: tool)
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("znbd-cmd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out"), err = dir.appendingPathComponent("err")
        FileManager.default.createFile(atPath: out.path, contents: nil)
        FileManager.default.createFile(atPath: err.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        if let input {
            let inFile = dir.appendingPathComponent("in")
            try input.write(to: inFile, atomically: true, encoding: .utf8)
            process.standardInput = try FileHandle(forReadingFrom: inFile)
        } else {
            process.standardInput = FileHandle.nullDevice
        }
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        var timedOut = false
        while process.isRunning {
            if Date() > deadline {
                timedOut = true
                process.terminate()
                usleep(200_000)
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                break
            }
            usleep(5_000)
        }
        process.waitUntilExit()
        return CommandResult(
            status: process.terminationStatus,
            stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "",
            timedOut: timedOut)
    }

    /// Runs and requires success, recording the output as the failure's context.
    @discardableResult
    static func require(
        _ tool: String, _ arguments: [String], timeout: Double = 120, input: String? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> CommandResult {
        let result = try run(tool, arguments, timeout: timeout, input: input)
        guard result.succeeded else {
            Issue.record("\(tool) \(arguments.joined(separator: " ")) failed: \(result)", sourceLocation: sourceLocation)
            throw CommandFailed(result: result)
        }
        return result
    }
}

/// A tool the tests need is not installed; CI installs them all (scripts/install-deps.sh).
struct ToolMissing: Error, CustomStringConvertible {
    var tool: String
    var description: String { "\(tool) is not installed; run scripts/install-deps.sh" }
}

struct CommandFailed: Error, CustomStringConvertible {
    var result: CommandResult
    var description: String { result.description }
}
