import Foundation
import Platform
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Runs the system tools that `swapon`/`mount` drive (losetup, mkswap, mount, ...),
/// each bounded in time, and spawns the long-lived ones (the server, nbdfuse)
/// detached in their own session.
public enum Tool {
    public struct Output: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
        public var timedOut: Bool
        public var succeeded: Bool { status == 0 && !timedOut }
    }

    /// A tool failed; the message names the command and quotes its error output.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String

        public init(description: String) { self.description = description }
    }

    /// Finds a tool on PATH or in the sbin directories, where root's tools live.
    public static func path(of tool: String) -> String? {
        if tool.hasPrefix("/") { return access(tool, X_OK) == 0 ? tool : nil }
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "") + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        for directory in path.split(separator: ":") where access("\(directory)/\(tool)", X_OK) == 0 {
            return "\(directory)/\(tool)"
        }
        return nil
    }

    /// Runs `tool arguments` to completion (SIGTERM after `timeout` seconds, SIGKILL soon after)
    /// and returns its output. The child starts with no blocked signals and default dispositions,
    /// whatever the caller's threads block, so it can itself stop what it starts.
    public static func run(_ tool: String, _ arguments: [String], timeout: Double = 120) throws -> Output {
        guard let executable = path(of: tool) else { throw Failure(description: "\(tool) is not installed") }
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("znbd-tool-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let out = scratch.appendingPathComponent("out").path, err = scratch.appendingPathComponent("err").path
        let pid = try spawn(executable, arguments, stdout: out, stderr: err, newSession: false)
        let deadline = Date().addingTimeInterval(timeout)
        var timedOut = false
        var status: Int32 = 0
        var killedAt: Date?
        while waitpid(pid, &status, WNOHANG) == 0 {
            if killedAt == nil, Date() > deadline {
                timedOut = true
                kill(pid, SIGTERM)
                killedAt = Date()
            } else if let killedAt, Date().timeIntervalSince(killedAt) > 0.3 {
                kill(pid, SIGKILL)
            }
            usleep(5_000)
        }
        let exited = status & 0x7f == 0
        return Output(
            status: exited ? (status >> 8) & 0xff : 128 + (status & 0x7f),
            stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: err, encoding: .utf8)) ?? "",
            timedOut: timedOut)
    }

    /// Runs and requires exit status 0; returns stdout.
    @discardableResult
    static func require(_ tool: String, _ arguments: [String], timeout: Double = 120) throws -> String {
        let output = try run(tool, arguments, timeout: timeout)
        guard output.succeeded else {
            let why = output.timedOut ? "timed out after \(Int(timeout)) s" : "exit status \(output.status)"
            let detail = output.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
            throw Failure(description: "\(tool) \(arguments.joined(separator: " ")) failed (\(why))\(detail.isEmpty ? "" : ": \(detail)")")
        }
        return output.stdout
    }

    /// Starts `executable arguments` in a new session (setsid), stdin from /dev/null and
    /// stdout/stderr appended to `log`, and does not wait for it. Returns its pid.
    static func spawnDetached(_ executable: String, _ arguments: [String], log: String) throws -> pid_t {
        // Nothing else of ours (such as the runtime directory's lock) leaks into the daemon.
        markDescriptorsCloseOnExec()
        return try spawn(executable, arguments, stdout: log, stderr: nil, newSession: true)
    }

    /// posix_spawn with stdin from /dev/null, stdout appended to `stdout`, stderr to `stderr`
    /// (or with stdout), an empty signal mask and default dispositions for the usual stop signals.
    /// The output files are opened here as private files (0600, never through a symlink), so
    /// a log in the runtime directory cannot be redirected into someone else's file.
    private static func spawn(
        _ executable: String, _ arguments: [String], stdout: String, stderr: String?, newSession: Bool
    ) throws -> pid_t {
        let output = try openOutput(stdout)
        defer { _ = try? output.close() }
        let errorOutput = try stderr.map(openOutput)
        defer { _ = try? errorOutput?.close() }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, output.rawValue, 1)
        posix_spawn_file_actions_adddup2(&actions, (errorOutput ?? output).rawValue, 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // A new session: no controlling terminal, no SIGHUP when the caller's terminal goes.
        var flags: SpawnFlags = [.setSignalMask, .setSignalDefaults]
        if newSession { flags.insert(.newSession) }
        posix_spawnattr_setflags(&attributes, flags.rawValue)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard result == 0 else {
            throw Failure(description: "cannot start \(executable): \(String(cString: strerror(result)))")
        }
        return pid
    }

    /// `path` opened for appending as a private file.
    private static func openOutput(_ path: String) throws -> FileDescriptor {
        do {
            return try PrivateFile.open(path, .writeOnly, options: [.create, .append])
        } catch {
            throw Failure(description: "cannot open \(path): \(error)\(error == .tooManySymbolicLinkLevels ? " (a symlink; refusing to follow it)" : "")")
        }
    }

    /// Sets FD_CLOEXEC on every descriptor above stderr.
    private static func markDescriptorsCloseOnExec() {
        let descriptors = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap { Int32($0) }
        for fd in descriptors where fd > 2 {
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
    }

    /// Whether `pid` is a live process (a zombie counts as gone).
    static func isAlive(_ pid: pid_t) -> Bool {
        guard pid > 0, kill(pid, 0) == 0 || errno == EPERM else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return true }
        let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
        return state != "Z" && state != "X"
    }

    /// Reaps `pid` if it is our child and has exited (no-op otherwise).
    static func reap(_ pid: pid_t) {
        var status: Int32 = 0
        _ = waitpid(pid, &status, WNOHANG)
    }

    /// Waits up to `seconds` for `pid` to exit; true if it did.
    static func waitForExit(_ pid: pid_t, seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            reap(pid)
            if !isAlive(pid) { return true }
            usleep(20_000)
        }
        reap(pid)
        return !isAlive(pid)
    }
}
