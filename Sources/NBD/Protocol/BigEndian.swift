/// Big-endian loads and stores on raw memory, without alignment demands.
extension UnsafeRawPointer {
    @inline(__always) func beU16(_ at: Int) -> UInt16 { UInt16(bigEndian: loadUnaligned(fromByteOffset: at, as: UInt16.self)) }
    @inline(__always) func beU32(_ at: Int) -> UInt32 { UInt32(bigEndian: loadUnaligned(fromByteOffset: at, as: UInt32.self)) }
    @inline(__always) func beU64(_ at: Int) -> UInt64 { UInt64(bigEndian: loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
}

extension UnsafeMutableRawPointer {
    @inline(__always) func putBE(_ v: UInt16, _ at: Int) { storeBytes(of: v.bigEndian, toByteOffset: at, as: UInt16.self) }
    @inline(__always) func putBE(_ v: UInt32, _ at: Int) { storeBytes(of: v.bigEndian, toByteOffset: at, as: UInt32.self) }
    @inline(__always) func putBE(_ v: UInt64, _ at: Int) { storeBytes(of: v.bigEndian, toByteOffset: at, as: UInt64.self) }
}

/// Appending big-endian integers to a byte array (handshake and tests; not the hot path).
extension Array where Element == UInt8 {
    mutating func appendBE(_ v: UInt16) { append(UInt8(v >> 8)); append(UInt8(v & 0xff)) }
    mutating func appendBE(_ v: UInt32) { for s in stride(from: 24, through: 0, by: -8) { append(UInt8((v >> UInt32(s)) & 0xff)) } }
    mutating func appendBE(_ v: UInt64) { for s in stride(from: 56, through: 0, by: -8) { append(UInt8((v >> UInt64(s)) & 0xff)) } }

    func beU16(_ at: Int) -> UInt16 { UInt16(self[at]) << 8 | UInt16(self[at + 1]) }
    func beU32(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 << 8 | UInt32(self[at + $1]) } }
    func beU64(_ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 << 8 | UInt64(self[at + $1]) } }
}
