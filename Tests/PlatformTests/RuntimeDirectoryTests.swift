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

    /// A pidfile planted by another user in a shared directory is neither written
    /// (it stays theirs, so they could rewrite the pid) nor trusted when read.
    @Test func privateFileOfAnotherUserIsRefused() throws {
        try #require(geteuid() == 0, "needs root to chown")
        try withTemporaryDirectory { directory in
            let planted = directory + "/znbd.pid"
            try Data("1\n".utf8).write(to: URL(fileURLWithPath: planted))
            #expect(chown(planted, 65534, 65534) == 0 && chmod(planted, 0o666) == 0)
            #expect(throws: Errno.permissionDenied) {
                try PrivateFile.open(planted, .writeOnly, options: [.create, .truncate])
            }
            #expect(throws: Errno.permissionDenied) { _ = try PrivateFile.read(planted) }
            #expect(try String(contentsOfFile: planted, encoding: .utf8) == "1\n")
        }
    }

    /// The runtime directory is compared with a socket's directory as a directory:
    /// `DIR//x`, `DIR/./x/` and a symlink to it are all `DIR/x`.
    @Test func directoriesAreComparedAsDirectoriesNotStrings() throws {
        #expect(Directories.lexicallyNormalised("/run//znbd/") == "/run/znbd")
        #expect(Directories.lexicallyNormalised("/run/./znbd//.") == "/run/znbd")
        #expect(Directories.lexicallyNormalised("//") == "/")
        #expect(Directories.lexicallyNormalised("a//b/") == "a/b")
        #expect(Directories.lexicallyNormalised("") == ".")
        try withTemporaryDirectory { parent in
            let real = parent + "/x"
            #expect(mkdir(real, 0o700) == 0)
            #expect(symlink(real, parent + "/alias") == 0)
            #expect(Directories.same(parent + "//x", real))
            #expect(Directories.same(parent + "/alias", real))
            #expect(Directories.same(parent + "/x/../x", real))
            #expect(!Directories.same(parent, real))
            #expect(Directories.same(parent + "/missing//y", parent + "/missing/y"))
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
