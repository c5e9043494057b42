/// Encoders for transmission replies. They write into raw memory the caller
/// reserved, so the hot path allocates nothing.
public enum NBDReply {
    /// Size of a simple reply header.
    public static let simpleHeaderSize = 16
    /// Size of a structured reply chunk header.
    public static let chunkHeaderSize = 20

    /// Writes a simple reply header: magic, error, cookie.
    @inline(__always)
    public static func simple(_ p: UnsafeMutableRawPointer, error: UInt32, cookie: UInt64) {
        p.putBE(NBDMagic.simpleReply, 0)
        p.putBE(error, 4)
        p.putBE(cookie, 8)
    }

    /// Writes a structured chunk header: magic, flags, type, cookie, payload length.
    @inline(__always)
    public static func chunk(
        _ p: UnsafeMutableRawPointer, flags: UInt16, type: NBDChunkType, cookie: UInt64, length: UInt32
    ) {
        p.putBE(NBDMagic.structuredReply, 0)
        p.putBE(flags, 4)
        p.putBE(type.rawValue, 6)
        p.putBE(cookie, 8)
        p.putBE(length, 16)
    }

    /// Size of an ERROR chunk with a message of `messageLength` bytes.
    public static func errorChunkSize(messageLength: Int) -> Int { chunkHeaderSize + 6 + messageLength }

    /// Writes a final ERROR chunk; returns its size.
    @discardableResult
    public static func errorChunk(
        _ p: UnsafeMutableRawPointer, error: UInt32, cookie: UInt64, message: UnsafeRawBufferPointer
    ) -> Int {
        chunk(p, flags: nbdReplyFlagDone, type: .error, cookie: cookie, length: UInt32(6 + message.count))
        p.putBE(error, 20)
        p.putBE(UInt16(message.count), 24)
        if let base = message.baseAddress, message.count > 0 {
            (p + 26).copyMemory(from: base, byteCount: message.count)
        }
        return errorChunkSize(messageLength: message.count)
    }
}
