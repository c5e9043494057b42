/// The 4-byte word at the start of every object slot in a normal class.
///
/// - Allocated: bit 31 set, bits 0...30 the class-local handle id, so
///   compaction can find the owner of an object it moves.
/// - Free: bit 31 clear, the word is the index of the next free object of
///   the zspage (``ObjectHeader/endOfList`` ends the list).
///
/// The huge class has no header: its objects are raw pages.
enum ObjectHeader {
    /// Bytes of header in front of each payload.
    static let size = 4
    /// Tag bit marking an allocated object.
    static let allocatedTag: UInt32 = 1 << 31
    /// Largest class-local id the header can carry.
    static let maximumLocalId: UInt32 = allocatedTag - 1
    /// Free-list terminator (never a valid object index).
    static let endOfList: UInt32 = 0xFFFF

    @inline(__always)
    static func load(_ object: UnsafeMutableRawPointer) -> UInt32 {
        object.loadUnaligned(as: UInt32.self)
    }

    @inline(__always)
    static func storeAllocated(_ object: UnsafeMutableRawPointer, localId: UInt32) {
        object.storeBytes(of: allocatedTag | localId, as: UInt32.self)
    }

    @inline(__always)
    static func storeFree(_ object: UnsafeMutableRawPointer, next: UInt32) {
        object.storeBytes(of: next, as: UInt32.self)
    }

    @inline(__always)
    static func isAllocated(_ word: UInt32) -> Bool { word & allocatedTag != 0 }

    @inline(__always)
    static func localId(_ word: UInt32) -> UInt32 { word & ~allocatedTag }
}
