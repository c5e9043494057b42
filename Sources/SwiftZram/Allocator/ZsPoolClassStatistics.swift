/// A snapshot of one merged size class of a ``ZsPool``.
public struct ZsPoolClassStatistics: Sendable, Hashable {
    /// Index of the merged class (0 is the smallest; the last is huge).
    public var classIndex: Int
    /// Bytes per object slot, the largest payload it takes (4096 for the huge class).
    public var size: Int
    /// OS pages per zspage.
    public var pagesPerZspage: Int
    /// Objects per zspage.
    public var objectsPerZspage: Int
    /// Zspages allocated now.
    public var zspages: Int
    /// Live objects.
    public var liveObjects: Int
    /// Resident pages of the class's zspages (counted in ``ZsPool/memoryUsed``).
    public var pagesHeld: Int
    /// Whether this is the huge class (one raw page per object).
    public var isHuge: Bool

    /// Zspages that packing the live objects tightly would free.
    public var freeableZspages: Int {
        zspages - (liveObjects + objectsPerZspage - 1) / objectsPerZspage
    }
}
