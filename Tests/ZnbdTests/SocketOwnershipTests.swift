import Foundation
import Testing
import ZnbdKit

/// Issue 10, D3/D4/D6, driven through the built `znbd`: a socket path or runtime directory
/// that is not ours is refused before anything in it is unlinked, followed or created.
@Suite(.serialized) struct SocketOwnershipTests {
    /// D3: a second `znbd serve` on the same `--unix` path refuses, naming the path, and the
    /// first server keeps serving what was written to it.
    @Test(.timeLimit(.minutes(3)))
    func secondServerOnALiveSocketRefuses() throws {
        let first = try ZnbdServer(["--size", "16M"])
        defer { first.stop() }
        try ExternalCommand.require("qemu-io", ["-f", "raw", "-c", "write -P 0x5a 0 64k", first.uri()])

        let other = try ZnbdServer.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: other) }
        let second = try ExternalCommand.run(
            ZnbdServer.binary,
            ["serve", "--unix", first.socket, "--control", other + "/control.sock", "--size", "16M", "--no-mlock"],
            timeout: 20)
        #expect(!second.timedOut && second.status != 0, "the second server must refuse: \(second)")
        #expect(second.stderr.contains(first.socket), "the message names the live server's socket: \(second)")
        #expect(!FileManager.default.fileExists(atPath: other + "/control.sock"), "nothing left behind")

        #expect(first.isRunning)
        try ExternalCommand.require("qemu-io", ["-f", "raw", "-c", "read -P 0x5a 0 64k", first.uri()])
    }

    /// D4: `--control` naming a regular file refuses and leaves the file as it was.
    @Test(.timeLimit(.minutes(2)))
    func controlPathThatIsARegularFileIsKept() throws {
        let directory = try ZnbdServer.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/notes.txt"
        try Data("do not delete\n".utf8).write(to: URL(fileURLWithPath: file))
        let result = try ExternalCommand.run(
            ZnbdServer.binary,
            ["serve", "--unix", directory + "/nbd.sock", "--control", file, "--size", "16M", "--no-mlock"],
            timeout: 20)
        #expect(!result.timedOut && result.status != 0, "\(result)")
        #expect(result.stderr.contains(file) && result.stderr.contains("not a socket"), "\(result)")
        #expect(try String(contentsOfFile: file, encoding: .utf8) == "do not delete\n")
        #expect(!FileManager.default.fileExists(atPath: directory + "/nbd.sock"), "the NBD socket is removed again")
    }

    /// D6: a runtime directory owned by another user, or writable by others, is refused
    /// before anything is created in it.
    @Test(.timeLimit(.minutes(3)), arguments: ["other-owner", "mode-0777"])
    func runtimeDirectoryNotOursIsRefused(_ how: String) throws {
        try #require(geteuid() == 0, "needs root to chown the directory to nobody")
        let sandbox = try OperationsSandbox()
        defer { sandbox.cleanUp() }
        try FileManager.default.createDirectory(atPath: sandbox.runtime, withIntermediateDirectories: false)
        if how == "other-owner" {
            #expect(chown(sandbox.runtime, 65534, 65534) == 0)
        } else {
            #expect(chmod(sandbox.runtime, 0o777) == 0)
        }
        let mountPoint = sandbox.directory + "/mnt"
        let result = try sandbox.znbd(["mount", "--runtime-dir", sandbox.runtime, "--size", "16M", mountPoint], timeout: 120)
        #expect(result.status != 0, "\(result)")
        let reason = how == "other-owner" ? "owned by uid 65534" : "writable by group or others"
        #expect(result.stderr.contains(sandbox.runtime) && result.stderr.contains(reason), "\(result)")
        let created = (try? FileManager.default.contentsOfDirectory(atPath: sandbox.runtime)) ?? []
        #expect(created.isEmpty, "nothing is created in a directory that is not ours: \(created)")
    }

    /// `ZNBD_RUNTIME_DIR=DIR//x` or `DIR/./x/` is `DIR/x`: the directory check runs for
    /// it too, so sockets never land below a directory others can rename things in.
    @Test(.timeLimit(.minutes(2)), arguments: ["//", "/./"])
    func runtimeDirectorySpelledOddlyIsStillChecked(_ separator: String) throws {
        let sandbox = try OperationsSandbox()
        defer { sandbox.cleanUp() }
        let shared = sandbox.directory + "/shared"
        #expect(mkdir(shared, 0o777) == 0 && chmod(shared, 0o777) == 0)
        let runtime = shared + separator + "x/"
        // The 30 s limit only turns a server that started (the defect) into a failure.
        let result = try sandbox.znbd(
            ["serve", "--size", "16M", "--no-fuse", "--no-mlock"], environment: ["ZNBD_RUNTIME_DIR": runtime], timeout: 30)
        #expect(!result.timedOut && result.status != 0, "\(result)")
        #expect(result.stderr.contains("writable by others"), "\(result)")
        #expect(!FileManager.default.fileExists(atPath: shared + "/x/nbd.sock"), "no socket below a shared directory")
    }

    /// A control socket another user serves (planted where they can write) is refused
    /// before a request goes out, so its answers are never shown as the server's.
    @Test(.timeLimit(.minutes(1)))
    func aControlSocketServedByAnotherUserIsRefused() throws {
        try #require(geteuid() == 0, "needs root to run a listener as nobody")
        let directory = try ZnbdServer.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(chmod(directory, 0o777) == 0)
        let path = directory + "/control.sock"
        let script = """
            import os, socket
            s = socket.socket(socket.AF_UNIX); s.bind("\(path)"); os.chmod("\(path)", 0o777); s.listen(1); s.settimeout(20)
            c, _ = s.accept(); c.sendall(b'{"ok":true,"value":"from nobody"}\\n'); c.settimeout(5); c.recv(100)
            """
        let impostor = Process()
        impostor.executableURL = URL(fileURLWithPath: "/usr/sbin/runuser")
        impostor.arguments = ["-u", "nobody", "--", "python3", "-c", script]
        try impostor.run()
        defer {
            if impostor.isRunning { impostor.terminate() }
            impostor.waitUntilExit()
        }
        var polls = 0
        while !FileManager.default.fileExists(atPath: path) && polls < 200 {
            usleep(50_000)
            polls += 1
        }
        try #require(FileManager.default.fileExists(atPath: path), "the impostor did not listen")
        #expect(performing: { _ = try ControlClient(path: path).get("zram0", "disksize") }, throws: { error in
            (error as? ControlError)?.kind == .permissionDenied && "\(error)".contains("uid 65534")
        })
    }

    /// D6: the log is not appended through a symlink another user left in the runtime directory.
    @Test(.timeLimit(.minutes(5)))
    func logSymlinkIsNotFollowed() throws {
        let sandbox = try OperationsSandbox()
        defer { sandbox.cleanUp() }
        try FileManager.default.createDirectory(atPath: sandbox.runtime, withIntermediateDirectories: false)
        let victim = sandbox.directory + "/root-only"
        try Data("root only\n".utf8).write(to: URL(fileURLWithPath: victim))
        #expect(symlink(victim, sandbox.runtime + "/znbd.log") == 0)
        let mountPoint = sandbox.directory + "/mnt"
        let result = try sandbox.znbd(["mount", "--size", "16M", mountPoint], timeout: 240)
        #expect(result.status != 0 && result.stderr.contains("znbd.log"), "\(result)")
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "root only\n", "the symlink's target is untouched")
    }

    /// D6: a state.json symlink is refused rather than read (or removed) through.
    @Test(.timeLimit(.minutes(2)))
    func stateSymlinkIsNotFollowed() throws {
        let sandbox = try OperationsSandbox()
        defer { sandbox.cleanUp() }
        try FileManager.default.createDirectory(atPath: sandbox.runtime, withIntermediateDirectories: false)
        // A valid, empty state: followed, it would be read and then "removed" (the link unlinked).
        let victim = sandbox.directory + "/elsewhere.json"
        let empty = #"{"mounts":[],"swaps":[]}"#
        try Data(empty.utf8).write(to: URL(fileURLWithPath: victim))
        #expect(symlink(victim, sandbox.stateFile) == 0)
        let result = try sandbox.znbd(["swapoff"], timeout: 60)
        #expect(result.status != 0 && result.stderr.contains("state.json"), "\(result)")
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == empty)
        var status = stat()
        #expect(lstat(sandbox.stateFile, &status) == 0 && status.st_mode & S_IFMT == S_IFLNK, "the symlink is left alone")
    }

    /// D6: the pidfile, the log and state.json are created 0600, in a 0700 runtime directory.
    @Test(
        .timeLimit(.minutes(5)),
        .enabled(
            if: KernelAttachment.unavailableReason == nil || ProcessInfo.processInfo.environment["CI"] == "true",
            "\(KernelAttachment.unavailableReason ?? "")"))
    func runtimeFilesArePrivate() throws {
        let sandbox = try OperationsSandbox()
        defer { sandbox.cleanUp() }
        let on = try sandbox.znbd(["swapon", "--size", "32M", "--devices", "1"])
        #expect(on.succeeded, "\(on)")
        #expect(mode(of: sandbox.runtime) == 0o700)
        for file in [sandbox.stateFile, sandbox.pidFile, sandbox.runtime + "/znbd.log"] {
            #expect(mode(of: file) == 0o600, "\(file)")
        }
        #expect(try sandbox.znbd(["swapoff"]).succeeded)
    }

    /// `znbd serve --pidfile` writes it 0600.
    @Test(.timeLimit(.minutes(2)))
    func servePidfileIsPrivate() throws {
        let directory = try ZnbdServer.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pidfile = directory + "/serve.pid"
        let server = try ZnbdServer(["--size", "16M", "--pidfile", pidfile])
        defer { server.stop() }
        let deadline = Date().addingTimeInterval(20)
        while !FileManager.default.fileExists(atPath: pidfile) && Date() < deadline { usleep(10_000) }
        #expect(mode(of: pidfile) == 0o600)
    }

    private func mode(of path: String) -> mode_t {
        var status = stat()
        guard lstat(path, &status) == 0 else { return 0 }
        return status.st_mode & 0o7777
    }
}
