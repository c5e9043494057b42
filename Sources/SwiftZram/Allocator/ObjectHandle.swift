/// Stable, indirect reference to a stored object. rawValue 0 is never a valid handle.
///
/// Layout: `(classIndex + 1) << 32 | classLocalId`. The class-local id
/// indexes the class's ``HandleTable``, which says where the object lives
/// now; compaction moves objects and updates the table, never the handle.
public struct ObjectHandle: Hashable, Sendable, BitwiseCopyable {
    public var rawValue: UInt64

    public init(rawValue: UInt64) {
        self.rawValue = rawValue
    }

    init(classIndex: Int, localId: UInt32) {
        rawValue = UInt64(classIndex + 1) << 32 | UInt64(localId)
    }

    /// Index of the merged size class that owns the object.
    var classIndex: Int { Int(truncatingIfNeeded: rawValue >> 32) - 1 }

    /// Index into the class's handle table.
    var localId: UInt32 { UInt32(truncatingIfNeeded: rawValue) }
}
