import Foundation
import Platform
import SystemPackage
import Testing

/// Issue 10, D6: a runtime directory another user can write to is refused, and its
/// files are opened without following symlinks and created 0600.
@Suite struct RuntimeDirectoryTests {
    @Test func missingDirectoryIsCreatedPrivate() throws {
        try withTemporaryDirectory { parent in
            let path = parent + "/run/znbd"
            try RuntimeDirectory.prepare(path)
            var status = stat()
            #expect(lstat(path, &status) == 0)
            #expect(status.st_mode & 0o777 == 0o700)
            try RuntimeDirectory.prepare(path)  // an existing good one is fine
        }
    }

    @Test func worldWritableDirectoryIsRefused() throws {
        try withTemporaryDirectory { path in
            #expect(chmod(path, 0o777) == 0)
            #expect {
                try RuntimeDirectory.prepare(path)
            } throws: { error in
                guard let error = error as? RuntimeDirectoryError else { return false }
                return error.problem == .writableByOthers(0o777) && error.description.contains(path)
            }
        }
    }

    @Test func directoryOfAnotherUserIsRefused() throws {
        try #require(geteuid() == 0, "needs root to chown")
        try withTemporaryDirectory { path in
            #expect(chown(path, 65534, 65534) == 0)
            #expect {
                try RuntimeDirectory.prepare(path)
            } throws: { error in
                (error as? RuntimeDirectoryError)?.problem == .ownedByOtherUser(65534)
            }
        }
    }

    @Test func symlinkedDirectoryIsRefused() throws {
        try withTemporaryDirectory { parent in
            let real = parent + "/real"
            try RuntimeDirectory.prepare(real)
            let link = parent + "/link"
            #expect(symlink(real, link) == 0)
            #expect(throws: RuntimeDirectoryError.self) { try RuntimeDirectory.prepare(link) }
        }
    }

    @Test func privateFileIsCreated0600AndNarrowed() throws {
        try withTemporaryDirectory { directory in
            let created = directory + "/state.json"
            let fd = try PrivateFile.open(created, .writeOnly, options: [.create, .append])
            try fd.close()
            #expect(mode(of: created) == 0o600)
            let wide = directory + "/old.log"
            #expect(creat(wide, 0o644) >= 0)
            #expect(chmod(wide, 0o644) == 0)
            try PrivateFile.open(wide, .writeOnly, options: [.append]).close()
            #expect(mode(of: wide) == 0o600)
        }
    }

    @Test func symlinkIsNotFollowed() throws {
        try withTemporaryDirectory { directory in
            let victim = directory + "/victim"
            try Data("root only".utf8).write(to: URL(fileURLWithPath: victim))
            let link = directory + "/znbd.log"
            #expect(symlink(victim, link) == 0)
            #expect(throws: Errno.tooManySymbolicLinkLevels) {
                try PrivateFile.open(link, .writeOnly, options: [.create, .append])
            }
            #expect(throws: Errno.tooManySymbolicLinkLevels) { _ = try PrivateFile.read(link) }
            #expect(try String(contentsOfFile: victim, encoding: .utf8) == "root only")
        }
    }

    @Test func fifoIsRefusedWithoutBlocking() throws {
        try withTemporaryDirectory { directory in
            let fifo = directory + "/state.json"
            #expect(mkfifo(fifo, 0o600) == 0)
            #expect(throws: Errno.self) { try PrivateFile.open(fifo, .writeOnly) }
            #expect(throws: Errno.self) { _ = try PrivateFile.read(fifo) }
        }
    }

    @Test func atomicWriteReplacesASymlinkInsteadOfFollowingIt() throws {
        try withTemporaryDirectory { directory in
            let victim = directory + "/victim"
            try Data("keep".utf8).write(to: URL(fileURLWithPath: victim))
            let path = directory + "/state.json"
            #expect(symlink(victim, path) == 0)
            try PrivateFile.writeAtomically(Array("{}".utf8), to: path)
            #expect(try String(contentsOfFile: victim, encoding: .utf8) == "keep")
            #expect(try PrivateFile.read(path) == Array("{}".utf8))
            #expect(mode(of: path) == 0o600)
        }
    }

    private func mode(of path: String) -> mode_t {
        var status = stat()
        guard lstat(path, &status) == 0 else { return 0 }
        return status.st_mode & 0o7777
    }
}
