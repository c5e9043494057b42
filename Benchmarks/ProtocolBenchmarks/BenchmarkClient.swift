import NBD
import Platform

#if canImport(Glibc)
import Glibc
#endif

struct BenchmarkClientError: Error, CustomStringConvertible {
    var description: String
}

/// A blocking NBD client over a Unix socket that sends one prebuilt batch of requests
/// and drains its simple replies, from buffers allocated once. Only its benchmark's
/// thread uses it.
final class BenchmarkClient {
    private let fd: Int32
    private let batch: UnsafeMutableRawBufferPointer
    private let replies: UnsafeMutableRawBufferPointer
    private let replyStride: Int
    private let depth: Int

    /// Connects to `socket`, enters transmission on `export` with NBD_OPT_EXPORT_NAME (so replies
    /// are simple), and prebuilds `depth` requests of `command` for `length` bytes at spread offsets.
    init(socket: String, export: String, command: NBDCommand, length: Int, depth: Int) throws {
        fd = try UnixSocket.connect(to: socket).rawValue
        self.depth = depth
        let hasPayload = command == .write
        let requestSize = 28 + (hasPayload ? length : 0)
        batch = .allocate(byteCount: requestSize * depth, alignment: 4096)
        // Compressible but not same-filled, so a compressing export really compresses.
        let bytes = batch.bindMemory(to: UInt8.self)
        for index in bytes.indices { bytes[index] = UInt8(truncatingIfNeeded: (index >> 4) &* 31 &+ index % 7) }
        replyStride = 16 + (command == .read ? length : 0)
        replies = .allocate(byteCount: replyStride * depth, alignment: 4096)
        try handshake(export: export)
        for slot in 0..<depth {
            let header = batch.baseAddress! + slot * requestSize
            Self.store(NBDMagic.request, header)
            Self.store(UInt16(0), header + 4)
            Self.store(command.rawValue, header + 6)
            Self.store(UInt64(slot + 1), header + 8)
            Self.store(UInt64(slot * 1_048_576 + slot * length), header + 16)
            Self.store(UInt32(length), header + 24)
        }
    }

    deinit {
        close(fd)
        batch.deallocate()
        replies.deallocate()
    }

    /// Sends the batch and reads every reply; throws if any reply carries an error.
    func roundTrip() throws {
        try sendAll(UnsafeRawBufferPointer(batch))
        try receiveAll(replies)
        for slot in 0..<depth {
            let reply = UnsafeRawPointer(replies.baseAddress! + slot * replyStride)
            let error = UInt32(bigEndian: reply.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
            guard error == 0 else { throw BenchmarkClientError(description: "request \(slot) failed with NBD error \(error)") }
        }
    }

    private func handshake(export: String) throws {
        var greeting = [UInt8](repeating: 0, count: 18)
        try greeting.withUnsafeMutableBytes { try receiveAll($0) }
        let clientFlags = NBDClientFlags([.fixedNewstyle, .noZeroes]).rawValue
        let name = Array(export.utf8)
        var option = [UInt8](repeating: 0, count: 4 + 16 + name.count)
        option.withUnsafeMutableBytes { raw in
            Self.store(clientFlags, raw.baseAddress!)
            Self.store(NBDMagic.option, raw.baseAddress! + 4)
            Self.store(NBDOption.exportName.rawValue, raw.baseAddress! + 12)
            Self.store(UInt32(name.count), raw.baseAddress! + 16)
            UnsafeMutableRawBufferPointer(rebasing: raw[20...]).copyBytes(from: name)
        }
        try option.withUnsafeBytes { try sendAll($0) }
        var exportInfo = [UInt8](repeating: 0, count: 10)
        try exportInfo.withUnsafeMutableBytes { try receiveAll($0) }
    }

    private func sendAll(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let n = send(fd, bytes.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw BenchmarkClientError(description: "send failed: errno \(errno)") }
            done += n
        }
    }

    private func receiveAll(_ bytes: UnsafeMutableRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let n = recv(fd, bytes.baseAddress! + done, bytes.count - done, 0)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw BenchmarkClientError(description: "the server closed the connection") }
            done += n
        }
    }

    private static func store<T: FixedWidthInteger>(_ value: T, _ at: UnsafeMutableRawPointer) {
        at.storeBytes(of: value.bigEndian, as: T.self)
    }
}
