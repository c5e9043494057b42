#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Platform

/// Finds, starts and stops the background `znbd serve` that `swapon` and `mount` use.
enum Daemon {
    /// Whether a server answers on `control` (one busy with other clients answers too).
    static func isAnswering(_ control: String) -> Bool {
        do throws(ControlError) {
            _ = try ControlClient(path: control).status()
            return true
        } catch {
            return error.kind == .busy
        }
    }

    /// Starts `znbd serve` detached with no devices (the caller hot-adds them),
    /// its pidfile and log in the runtime directory, and waits until its control
    /// socket answers.
    /// - Returns: the record `swapoff`/`umount` use to stop it again.
    public static func start(_ paths: RuntimePaths, control: String, unix: String) throws -> SetupState.Daemon {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let arguments = ["serve", "--unix", unix, "--control", control, "--pidfile", paths.pidFile, "--devices", "0"]
        let pid = try Tool.spawnDetached(executable, arguments, log: paths.logFile)
        let deadline = Date().addingTimeInterval(30)
        while !isAnswering(control) {
            Tool.reap(pid)
            guard Tool.isAlive(pid), Date() < deadline else {
                if Tool.isAlive(pid) { kill(pid, SIGKILL) }
                _ = Tool.waitForExit(pid, seconds: 5)
                let log = String(decoding: ((try? PrivateFile.read(paths.logFile)) ?? nil) ?? [], as: UTF8.self)
                let tail = log.split(separator: "\n").suffix(5).joined(separator: "\n")
                throw Tool.Failure(description: "znbd serve did not come up on \(control); \(paths.logFile) ends:\n\(tail)")
            }
            usleep(20_000)
        }
        return SetupState.Daemon(pid: pid, control: control, unix: unix)
    }

    /// Stops a server we started: SIGTERM (it finishes in-flight requests and removes
    /// its sockets and pidfile), SIGKILL after 15 s. Only signals a process that
    /// still looks like znbd, so a recycled pid is left alone.
    public static func stop(_ daemon: SetupState.Daemon) throws {
        let pid = daemon.pid
        guard Tool.isAlive(pid) else { return }
        let commandLine = (try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)) ?? ""
        guard commandLine.contains("serve") && commandLine.contains(daemon.control) else { return }
        kill(pid, SIGTERM)
        if Tool.waitForExit(pid, seconds: 15) { return }
        kill(pid, SIGKILL)
        guard Tool.waitForExit(pid, seconds: 5) else {
            throw Tool.Failure(description: "znbd serve (pid \(pid)) did not exit")
        }
    }
}
