import Foundation
import Platform
import SystemPackage
import Testing

/// The liveness check that stands between `listen` and `unlink` (issue 10, D3/D4).
@Suite struct UnixSocketProbeTests {
    @Test func absentPathIsAbsentAndListenCreatesAPrivateSocket() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/a.sock"
            #expect(try UnixSocket.probe(path) == .absent)
            let fd = try UnixSocket.listen(at: path, backlog: 4)
            defer { _ = try? fd.close() }
            #expect(try UnixSocket.probe(path) == .live)
            var status = stat()
            #expect(lstat(path, &status) == 0)
            #expect(status.st_mode & 0o777 == 0o600)
        }
    }

    @Test func liveServerIsRefusedAndKeepsServing() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/live.sock"
            let first = try UnixSocket.listen(at: path, backlog: 4)
            defer { _ = try? first.close() }
            #expect {
                _ = try UnixSocket.listen(at: path, backlog: 4)
            } throws: { error in
                guard let error = error as? UnixSocketError else { return false }
                return error.kind == .serverAlive && error.description.contains(path)
            }
            // The first server's socket file is still the one clients reach.
            let client = try UnixSocket.connect(to: path)
            defer { _ = try? client.close() }
            let accepted = accept(first.rawValue, nil, nil)
            #expect(accepted >= 0)
            if accepted >= 0 { close(accepted) }
        }
    }

    @Test func fullBacklogCountsAsLive() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/busy.sock"
            let server = try UnixSocket.listen(at: path, backlog: 0)
            defer { _ = try? server.close() }
            // Fill the backlog with connections nobody accepts (bounded).
            var clients: [FileDescriptor] = []
            defer { for client in clients { _ = try? client.close() } }
            for _ in 0..<8 {
                let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
                guard fd >= 0 else { break }
                clients.append(FileDescriptor(rawValue: fd))
                var address = sockaddr_un()
                address.sun_family = sa_family_t(AF_UNIX)
                withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
                let result = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                    }
                }
                if result != 0 { break }
            }
            #expect(try UnixSocket.probe(path) == .live)
        }
    }

    @Test func deadSocketIsReplaced() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/dead.sock"
            let first = try UnixSocket.listen(at: path, backlog: 4)
            try first.close()  // the file stays, nobody listens
            #expect(try UnixSocket.probe(path) == .dead)
            let second = try UnixSocket.listen(at: path, backlog: 4)
            defer { _ = try? second.close() }
            #expect(try UnixSocket.probe(path) == .live)
        }
    }

    @Test func regularFileIsRefusedAndKept() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/not-a-socket"
            try Data("keep me".utf8).write(to: URL(fileURLWithPath: path))
            #expect(try UnixSocket.probe(path) == .notASocket)
            #expect {
                _ = try UnixSocket.listen(at: path, backlog: 4)
            } throws: { error in
                (error as? UnixSocketError)?.kind == .notASocket
            }
            #expect(try String(contentsOfFile: path, encoding: .utf8) == "keep me")
        }
    }

    @Test func symlinkIsNotASocketEvenWhenItPointsToOne() throws {
        try withTemporaryDirectory { directory in
            let target = directory + "/real.sock"
            let server = try UnixSocket.listen(at: target, backlog: 4)
            defer { _ = try? server.close() }
            let link = directory + "/link.sock"
            #expect(symlink(target, link) == 0)
            #expect(try UnixSocket.probe(link) == .notASocket)
            #expect(throws: UnixSocketError.self) { _ = try UnixSocket.listen(at: link, backlog: 4) }
            #expect(try UnixSocket.probe(target) == .live)
        }
    }

    @Test func tooLongPathIsRefused() {
        let path = "/tmp/" + String(repeating: "x", count: 200)
        #expect {
            _ = try UnixSocket.listen(at: path, backlog: 4)
        } throws: { error in
            (error as? UnixSocketError)?.kind == .pathTooLong
        }
    }
}

/// Runs `body` with a new private directory, removed afterwards.
func withTemporaryDirectory(_ body: (String) throws -> Void) throws {
    var template = Array((FileManager.default.temporaryDirectory.path + "/platform-XXXXXX").utf8CString)
    let directory = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }.map { String(cString: $0) }
    let path = try #require(directory)
    defer { try? FileManager.default.removeItem(atPath: path) }
    try body(path)
}
