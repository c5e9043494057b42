import Foundation
import NBD

/// A small blocking NBD client over a Unix socket: fixed-newstyle handshake with
/// NBD_OPT_GO or NBD_OPT_EXPORT_NAME, then simple-reply reads and writes. Every
/// receive has a timeout, so a server that misbehaves fails the test instead of hanging it.
final class NBDTestClient {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// How the client enters transmission.
    enum Entry: CaseIterable { case go, exportName }

    private let fd: Int32
    /// The export's size, as the server announced it.
    private(set) var size: UInt64 = 0
    private var cookie: UInt64 = 0

    /// Connects and haggles into transmission on `export`.
    /// - Throws: `Failure` when the server refuses the export or closes the connection.
    init(socket path: String, export: String, entry: Entry = .go, timeoutSeconds: Int = 30) throws {
        fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { bytes in
            for (i, b) in path.utf8.prefix(bytes.count - 1).enumerated() { bytes[i] = b }
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        // Every stored property is set: a throw from here on runs deinit, which closes the socket.
        guard connected == 0 else { throw Failure(description: "connect \(path): \(String(cString: strerror(errno)))") }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        try haggle(export: export, entry: entry)
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    private func haggle(export: String, entry: Entry) throws {
        let greeting = try receive(18)
        guard Self.u64(greeting, 0) == NBDMagic.greeting, Self.u64(greeting, 8) == NBDMagic.option else {
            throw Failure(description: "bad greeting")
        }
        var out: [UInt8] = []
        Self.append(&out, UInt32(NBDClientFlags([.fixedNewstyle, .noZeroes]).rawValue))
        let name = Array(export.utf8)
        Self.append(&out, NBDMagic.option)
        switch entry {
        case .exportName:
            Self.append(&out, NBDOption.exportName.rawValue)
            Self.append(&out, UInt32(name.count))
            out += name
            try send(out)
            // Size and flags; an unknown export closes the connection instead.
            let reply = try receive(10)
            size = Self.u64(reply, 0)
        case .go:
            Self.append(&out, NBDOption.go.rawValue)
            Self.append(&out, UInt32(4 + name.count + 2))
            Self.append(&out, UInt32(name.count))
            out += name
            out += [0, 0]
            try send(out)
            while true {
                let header = try receive(20)
                guard Self.u64(header, 0) == NBDMagic.optionReply else { throw Failure(description: "bad option reply") }
                let type = Self.u32(header, 12)
                let length = Int(Self.u32(header, 16))
                let data = length > 0 ? try receive(length) : []
                if type == NBDOptionReply.ack.rawValue { break }
                if type & 0x8000_0000 != 0 { throw Failure(description: "GO refused (reply type \(type))") }
                if type == NBDOptionReply.info.rawValue, data.count >= 12, data[0] == 0, data[1] == 0 {
                    size = Self.u64(data, 2)
                }
            }
        }
    }

    /// Writes `data` at `offset`; returns the NBD error (0 when acknowledged).
    func write(_ data: [UInt8], at offset: UInt64) throws -> UInt32 {
        try sendRequest(.write, offset: offset, length: UInt32(data.count), payload: data)
        return try receiveReply()
    }

    /// Reads `length` bytes at `offset`; throws when the server answers with an error.
    func read(at offset: UInt64, length: Int) throws -> [UInt8] {
        try sendRequest(.read, offset: offset, length: UInt32(length))
        let error = try receiveReply()
        guard error == 0 else { throw Failure(description: "read at \(offset) failed with NBD error \(error)") }
        return try receive(length)
    }

    /// NBD_CMD_DISC: the server closes the connection after it.
    func disconnect() {
        try? sendRequest(.disconnect, offset: 0, length: 0)
        _ = try? receive(1)  // waits for the server to close
    }

    private func sendRequest(_ command: NBDCommand, offset: UInt64, length: UInt32, payload: [UInt8] = []) throws {
        cookie += 1
        var out: [UInt8] = []
        Self.append(&out, NBDMagic.request)
        Self.append(&out, UInt16(0))
        Self.append(&out, command.rawValue)
        Self.append(&out, cookie)
        Self.append(&out, offset)
        Self.append(&out, length)
        try send(out + payload)
    }

    private func receiveReply() throws -> UInt32 {
        let header = try receive(16)
        guard Self.u32(header, 0) == NBDMagic.simpleReply else { throw Failure(description: "bad reply magic \(header.prefix(4))") }
        guard Self.u64(header, 8) == cookie else { throw Failure(description: "reply for another request") }
        return Self.u32(header, 4)
    }

    // MARK: Bytes

    private func send(_ bytes: [UInt8]) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw Failure(description: "send: \(String(cString: strerror(errno)))") }
            done += n
        }
    }

    private func receive(_ count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = out.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + done, count - done, 0) }
            if n < 0 && errno == EINTR { continue }
            if n == 0 { throw Failure(description: "the server closed the connection") }
            guard n > 0 else { throw Failure(description: "recv: \(String(cString: strerror(errno)))") }
            done += n
        }
        return out
    }

    private static func append<T: FixedWidthInteger>(_ out: inout [UInt8], _ value: T) {
        withUnsafeBytes(of: value.bigEndian) { out.append(contentsOf: $0) }
    }

    private static func u32(_ b: [UInt8], _ at: Int) -> UInt32 {
        b[at..<at + 4].reduce(0) { $0 << 8 | UInt32($1) }
    }

    private static func u64(_ b: [UInt8], _ at: Int) -> UInt64 {
        b[at..<at + 8].reduce(0) { $0 << 8 | UInt64($1) }
    }
}
