/// A transmission request header (28 bytes on the wire).
public struct NBDRequest: Sendable, Equatable {
    /// Size of the header on the wire.
    public static let headerSize = 28

    public var flags: UInt16
    public var type: UInt16
    public var cookie: UInt64
    public var offset: UInt64
    public var length: UInt32

    public init(flags: UInt16 = 0, type: UInt16, cookie: UInt64, offset: UInt64, length: UInt32) {
        self.flags = flags
        self.type = type
        self.cookie = cookie
        self.offset = offset
        self.length = length
    }

    /// Parses a header; nil when the magic is wrong (the connection must close).
    @inline(__always)
    public static func parse(_ p: UnsafeRawPointer) -> NBDRequest? {
        guard p.beU32(0) == NBDMagic.request else { return nil }
        return NBDRequest(flags: p.beU16(4), type: p.beU16(6), cookie: p.beU64(8), offset: p.beU64(16), length: p.beU32(24))
    }

    /// Encodes the header (clients and tests).
    public func encode(into bytes: inout [UInt8]) {
        bytes.appendBE(NBDMagic.request)
        bytes.appendBE(flags)
        bytes.appendBE(type)
        bytes.appendBE(cookie)
        bytes.appendBE(offset)
        bytes.appendBE(length)
    }

    /// The command, nil when unknown.
    public var command: NBDCommand? { NBDCommand(rawValue: type) }

    /// Whether the request carries a payload after the header.
    public var hasPayload: Bool { type == NBDCommand.write.rawValue }

    /// Whether `[offset, offset + length)` lies inside `size`, without overflowing.
    @inline(__always)
    public func fits(in size: UInt64) -> Bool {
        UInt64(length) <= size && offset <= size - UInt64(length)
    }
}
