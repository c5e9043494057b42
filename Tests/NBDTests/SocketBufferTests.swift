import Testing
@testable import NBD

#if canImport(Glibc)
import Glibc
#endif

/// Unix-socket connections get `unixSendBufferSize` of kernel send buffer, so a large
/// READ reply is handed to the kernel whole and the connection goes on to the next request.
@Suite struct SocketBufferTests {
    /// SO_SNDBUF of every socket this process holds (the server's side included).
    static func sendBuffers() -> [Int32] {
        guard let directory = opendir("/proc/self/fd") else { return [] }
        defer { closedir(directory) }
        var sizes: [Int32] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            guard let fd = Int32(name) else { continue }
            var info = stat()
            guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFSOCK else { continue }
            var value: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            if getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &value, &length) == 0 { sizes.append(value) }
        }
        return sizes
    }

    @Test func unixConnectionsGetTheConfiguredSendBuffer() throws {
        // 3 MiB: no default of this process's other sockets has that size.
        let wanted = 3 << 20
        try withServer(configure: { $0.unixSendBufferSize = wanted }) { s in
            #expect(!Self.sendBuffers().contains(Int32(wanted)))
            let client = try s.connected()
            let pattern = [UInt8].pattern(1 << 20, seed: 11)
            try pattern.withUnsafeBytes { try s.export.write($0, at: 0) }
            #expect(try client.structuredRead(offset: 0, length: pattern.count).data == pattern)
            #expect(Self.sendBuffers().filter { $0 == Int32(wanted) }.count == 1)
        }
    }
}
