@testable import NBD

#if canImport(Glibc)
import Glibc
#endif

struct ClientError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// A minimal blocking NBD client over raw sockets, for protocol tests.
/// Every receive has a timeout, so a misbehaving server fails a test instead of hanging it.
final class RawClient {
    let fd: Int32

    init(unixPath: String, timeoutSeconds: Int = 10) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { p in
            for (i, b) in unixPath.utf8.enumerated() { p[i] = b }
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            close(fd)
            throw ClientError("connect \(unixPath): \(String(cString: strerror(errno)))")
        }
        setTimeout(seconds: timeoutSeconds)
    }

    init(tcpPort: Int, timeoutSeconds: Int = 10) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(tcpPort).bigEndian
        addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            close(fd)
            throw ClientError("connect tcp \(tcpPort): \(String(cString: strerror(errno)))")
        }
        setTimeout(seconds: timeoutSeconds)
    }

    deinit { close(fd) }

    func setTimeout(seconds: Int) {
        var tv = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    // MARK: - Bytes

    func send(_ bytes: [UInt8]) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw ClientError("send: \(String(cString: strerror(errno)))") }
            done += n
        }
    }

    func receive(_ count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = out.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + done, count - done, 0) }
            if n < 0 && errno == EINTR { continue }
            if n == 0 { throw ClientError("server closed the connection") }
            guard n > 0 else { throw ClientError("recv: \(String(cString: strerror(errno)))") }
            done += n
        }
        return out
    }

    /// True when the server closed the connection (EOF or reset) within the timeout.
    func isClosedByServer() -> Bool {
        var b = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = b.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, 4096, 0) }
            if n == 0 { return true }
            if n < 0 { return errno == ECONNRESET || errno == EPIPE }
        }
    }

    // MARK: - Handshake

    /// Reads the greeting; returns the handshake flags.
    @discardableResult
    func readGreeting() throws -> UInt16 {
        let g = try receive(18)
        guard g.beU64(0) == NBDMagic.greeting, g.beU64(8) == NBDMagic.option else { throw ClientError("bad greeting") }
        return g.beU16(16)
    }

    func sendClientFlags(_ flags: UInt32 = 3) throws {
        var b: [UInt8] = []
        b.appendBE(flags)
        try send(b)
    }

    func sendOption(_ option: UInt32, _ data: [UInt8] = []) throws {
        var b: [UInt8] = []
        b.appendBE(NBDMagic.option)
        b.appendBE(option)
        b.appendBE(UInt32(data.count))
        b += data
        try send(b)
    }

    struct OptionReply {
        var option: UInt32
        var type: UInt32
        var data: [UInt8]
    }

    func readOptionReply() throws -> OptionReply {
        let h = try receive(20)
        guard h.beU64(0) == NBDMagic.optionReply else { throw ClientError("bad option reply magic") }
        let len = Int(h.beU32(16))
        return OptionReply(option: h.beU32(8), type: h.beU32(12), data: len > 0 ? try receive(len) : [])
    }

    /// Reads replies up to and including the final ACK or error.
    func readOptionReplies() throws -> [OptionReply] {
        var all: [OptionReply] = []
        while true {
            let r = try readOptionReply()
            all.append(r)
            if r.type == NBDOptionReply.ack.rawValue || r.type & 0x8000_0000 != 0 { return all }
        }
    }

    static func infoRequest(name: String, infos: [UInt16] = []) -> [UInt8] {
        var d: [UInt8] = []
        d.appendBE(UInt32(name.utf8.count))
        d += Array(name.utf8)
        d.appendBE(UInt16(infos.count))
        for i in infos { d.appendBE(i) }
        return d
    }

    static func metaRequest(name: String, queries: [String]) -> [UInt8] {
        var d: [UInt8] = []
        d.appendBE(UInt32(name.utf8.count))
        d += Array(name.utf8)
        d.appendBE(UInt32(queries.count))
        for q in queries {
            d.appendBE(UInt32(q.utf8.count))
            d += Array(q.utf8)
        }
        return d
    }

    /// The libnbd-style handshake: structured replies, base:allocation, GO.
    /// Returns (size, transmission flags).
    @discardableResult
    func handshake(export: String = "", structured: Bool = true, meta: Bool = true) throws -> (UInt64, UInt16) {
        try readGreeting()
        try sendClientFlags(3)
        if structured {
            try sendOption(NBDOption.structuredReply.rawValue)
            guard try readOptionReply().type == NBDOptionReply.ack.rawValue else { throw ClientError("no structured replies") }
            if meta {
                try sendOption(NBDOption.setMetaContext.rawValue, Self.metaRequest(name: export, queries: ["base:allocation"]))
                let r = try readOptionReplies()
                guard r.count == 2 else { throw ClientError("no meta context") }
            }
        }
        try sendOption(NBDOption.go.rawValue, Self.infoRequest(name: export, infos: [3]))
        let replies = try readOptionReplies()
        guard let info = replies.first(where: { $0.type == NBDOptionReply.info.rawValue && $0.data.beU16(0) == 0 }),
            replies.last?.type == NBDOptionReply.ack.rawValue
        else { throw ClientError("GO failed: \(replies.map(\.type))") }
        return (info.data.beU64(2), info.data.beU16(10))
    }

    // MARK: - Transmission

    func sendRequest(_ type: NBDCommand, flags: UInt16 = 0, cookie: UInt64, offset: UInt64, length: UInt32, payload: [UInt8] = []) throws {
        try sendRawRequest(type: type.rawValue, flags: flags, cookie: cookie, offset: offset, length: length, payload: payload)
    }

    func sendRawRequest(type: UInt16, flags: UInt16 = 0, cookie: UInt64, offset: UInt64, length: UInt32, payload: [UInt8] = []) throws {
        var b: [UInt8] = []
        NBDRequest(flags: flags, type: type, cookie: cookie, offset: offset, length: length).encode(into: &b)
        try send(b + payload)
    }

    /// Reads a simple reply header; returns (error, cookie).
    func readSimpleReply() throws -> (UInt32, UInt64) {
        let h = try receive(16)
        guard h.beU32(0) == NBDMagic.simpleReply else { throw ClientError("expected a simple reply, magic \(h.beU32(0))") }
        return (h.beU32(4), h.beU64(8))
    }

    struct Chunk {
        var flags: UInt16
        var type: UInt16
        var cookie: UInt64
        var data: [UInt8]
        var done: Bool { flags & 1 != 0 }
    }

    /// Reads either reply kind: a simple reply becomes a chunk of type 0xFFFF with the error in data.
    func readAnyReply(simpleReadLength: Int = 0) throws -> Chunk {
        let m = try receive(4)
        if m.beU32(0) == NBDMagic.simpleReply {
            let rest = try receive(12)
            let error = rest.beU32(0)
            var data: [UInt8] = []
            data.appendBE(error)
            if error == 0 && simpleReadLength > 0 { data += try receive(simpleReadLength) }
            return Chunk(flags: 1, type: 0xFFFF, cookie: rest.beU64(4), data: data)
        }
        guard m.beU32(0) == NBDMagic.structuredReply else { throw ClientError("bad reply magic \(m.beU32(0))") }
        let rest = try receive(16)
        let len = Int(rest.beU32(12))
        return Chunk(flags: rest.beU16(0), type: rest.beU16(2), cookie: rest.beU64(4), data: len > 0 ? try receive(len) : [])
    }

    func readChunk() throws -> Chunk {
        let c = try readAnyReply()
        guard c.type != 0xFFFF else { throw ClientError("expected a structured chunk") }
        return c
    }

    /// Reads all chunks of one structured reply.
    func readChunks() throws -> [Chunk] {
        var all: [Chunk] = []
        repeat { all.append(try readChunk()) } while !all.last!.done
        return all
    }

    /// A simple-reply READ; returns the data.
    func simpleRead(offset: UInt64, length: Int, cookie: UInt64 = 1) throws -> [UInt8] {
        try sendRequest(.read, cookie: cookie, offset: offset, length: UInt32(length))
        let (error, c) = try readSimpleReply()
        guard error == 0, c == cookie else { throw ClientError("read failed: error \(error)") }
        return try receive(length)
    }

    /// A structured READ reassembled from its chunks (holes become zeros).
    func structuredRead(offset: UInt64, length: Int, flags: UInt16 = 0, cookie: UInt64 = 1) throws -> (data: [UInt8], chunks: [Chunk]) {
        try sendRequest(.read, flags: flags, cookie: cookie, offset: offset, length: UInt32(length))
        let chunks = try readChunks()
        var data = [UInt8](repeating: 0xAA, count: length)
        for c in chunks {
            switch c.type {
            case NBDChunkType.offsetData.rawValue:
                let at = Int(c.data.beU64(0) - offset)
                data.replaceSubrange(at..<at + c.data.count - 8, with: c.data[8...])
            case NBDChunkType.offsetHole.rawValue:
                let at = Int(c.data.beU64(0) - offset)
                let n = Int(c.data.beU32(8))
                data.replaceSubrange(at..<at + n, with: repeatElement(0, count: n))
            case NBDChunkType.error.rawValue:
                throw ClientError("read error \(c.data.beU32(0))")
            default:
                break
            }
        }
        return (data, chunks)
    }

    /// A WRITE answered with a simple reply; returns the error.
    func write(offset: UInt64, _ data: [UInt8], flags: UInt16 = 0, cookie: UInt64 = 2) throws -> UInt32 {
        try sendRequest(.write, flags: flags, cookie: cookie, offset: offset, length: UInt32(data.count), payload: data)
        let (error, c) = try readSimpleReply()
        guard c == cookie else { throw ClientError("cookie mismatch") }
        return error
    }

    /// Sends a command without payload and returns the error of its (first) reply.
    func command(_ type: NBDCommand, flags: UInt16 = 0, offset: UInt64, length: UInt32, cookie: UInt64 = 3) throws -> UInt32 {
        try sendRequest(type, flags: flags, cookie: cookie, offset: offset, length: length)
        return try replyError(cookie: cookie)
    }

    /// The error of the next reply, simple or structured.
    func replyError(cookie: UInt64) throws -> UInt32 {
        var error: UInt32 = 0
        while true {
            let c = try readAnyReply()
            guard c.cookie == cookie else { throw ClientError("cookie mismatch: \(c.cookie) != \(cookie)") }
            if c.type == 0xFFFF || c.type == NBDChunkType.error.rawValue || c.type == NBDChunkType.errorOffset.rawValue {
                error = c.data.beU32(0)
            }
            if c.done { return error }
        }
    }

    func disconnect() {
        try? sendRequest(.disconnect, cookie: 0, offset: 0, length: 0)
    }
}

extension Array where Element == UInt8 {
    /// Deterministic pseudo-random bytes.
    static func pattern(_ count: Int, seed: UInt64) -> [UInt8] {
        var x = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<count).map { _ in
            x ^= x << 13
            x ^= x >> 7
            x ^= x << 17
            return UInt8(truncatingIfNeeded: x)
        }
    }
}
