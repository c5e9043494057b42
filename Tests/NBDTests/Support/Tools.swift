import Foundation

/// Runs the real NBD clients (libnbd-bin, qemu-utils, fio) as subprocesses.
enum Tools {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        var output: String { stdout + stderr }
    }

    /// The tool's path; throws with a clear message when it is missing (CI installs them).
    static func find(_ name: String) throws -> String {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let p = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        throw ClientError(
            "\(name) not found on PATH: install it (apt-get install libnbd-bin qemu-utils fio nbdkit) to run the real-client tests")
    }

    /// Runs a tool to completion (killed after `timeout`).
    static func run(_ name: String, _ args: [String], timeout: Duration = .seconds(120)) throws -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try find(name))
        p.arguments = args
        // The tool runs in a directory of its own (fio writes verify state files to its cwd).
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nbdtest-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(at: dir) }
        p.currentDirectoryURL = dir
        let out = dir.appendingPathComponent("stdout")
        let err = dir.appendingPathComponent("stderr")
        guard FileManager.default.createFile(atPath: out.path, contents: nil),
            FileManager.default.createFile(atPath: err.path, contents: nil)
        else { throw ClientError("cannot create \(out.path) or \(err.path)") }
        p.standardOutput = try FileHandle(forWritingTo: out)
        p.standardError = try FileHandle(forWritingTo: err)
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let deadline = ContinuousClock.now + timeout
        while p.isRunning {
            if ContinuousClock.now > deadline {
                // SIGKILL: children inherit the test runner's blocked signal mask, so SIGTERM may be ignored.
                kill(p.processIdentifier, SIGKILL)
                p.waitUntilExit()
                throw ClientError("\(name) timed out after \(timeout)")
            }
            usleep(20_000)
        }
        return Result(
            status: p.terminationStatus,
            stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "")
    }
}
