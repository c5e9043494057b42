/// Geometry of one (merged) size class: how big its objects are and how
/// its zspages are laid out.
///
/// Objects carry no header: a slot holds payload bytes only (the owner of
/// each slot is kept in the class's ``ObjectOwnerTable``). The huge class
/// stores raw pages.
struct SizeClassInfo: Sendable, Hashable {
    /// Bytes per object slot, a multiple of ``SizeClassTable/sizeDelta``.
    var size: Int
    /// OS pages in one zspage, 1...8.
    var pagesPerZspage: Int
    /// Objects that fit in one zspage: `pagesPerZspage * 4096 / size`.
    var objectsPerZspage: Int

    /// The huge class holds one raw 4096-byte page per zspage.
    var isHuge: Bool { pagesPerZspage == 1 && objectsPerZspage == 1 }

    /// Largest payload this class can hold: the whole slot.
    var payloadCapacity: Int { size }
}

/// The zsmalloc class table: 255 raw classes from 32 to 4096 bytes in
/// 16-byte steps, merged into the distinct classes the pool really keeps.
enum SizeClassTable {
    /// Bytes of an OS page.
    static let pageSize = 4096
    /// Smallest object slot.
    static let minimumSize = 32
    /// Step between raw classes.
    static let sizeDelta = 16
    /// Longest zspage chain (the kernel's `CONFIG_ZSMALLOC_CHAIN_SIZE` = 8).
    static let maximumPagesPerZspage = 8
    /// Raw classes before merging: 32, 48, ... 4096.
    static let rawClassCount = (pageSize - minimumSize) / sizeDelta + 1

    /// The chain length for `size`: the n in 1...8 that packs the most
    /// objects per page, `(n*4096 / size) / n`, i.e. the least wasted
    /// fraction `((n*4096) % size) / (n*4096)`, compared exactly; the
    /// smallest n on ties. That minimises the memory per object,
    /// `n*4096 / objects`, for every size.
    ///
    /// The kernel (`get_pages_per_zspage`) compares the used fraction in
    /// whole percent, so it keeps a shorter chain whenever a longer one wins
    /// by less than a point (e.g. 2096 bytes: 13 objects in 7 pages, 2206
    /// bytes each, instead of 15 in 8 pages, 2185 each; both "95 %"). It
    /// leaves 123 merged classes; this exact rule leaves 119 (with 16-byte
    /// steps) and wastes less on every size where the two differ.
    static func pagesPerZspage(forSize size: Int) -> Int {
        precondition(size > 0, "size classes are positive")
        var best = 1
        var bestObjects = pageSize / size
        for n in 2...maximumPagesPerZspage {
            let objects = n * pageSize / size
            // objects / n > bestObjects / best, without rounding.
            if objects * best > bestObjects * n {
                best = n
                bestObjects = objects
            }
        }
        return best
    }

    /// All raw classes, before merging.
    static func rawClasses() -> [SizeClassInfo] {
        (0..<rawClassCount).map { index in
            let size = minimumSize + index * sizeDelta
            let pages = pagesPerZspage(forSize: size)
            return SizeClassInfo(size: size, pagesPerZspage: pages, objectsPerZspage: pages * pageSize / size)
        }
    }

    /// Merges neighbouring raw classes that have the same pages and objects
    /// per zspage; the merged class takes the largest size (as the kernel
    /// does, walking from the top down).
    ///
    /// - Returns: the merged classes in ascending size, and for each raw
    ///   class the index of the merged class that serves it.
    static func merge(_ raw: [SizeClassInfo]) -> (classes: [SizeClassInfo], rawToMerged: [Int]) {
        var mergedDescending: [SizeClassInfo] = []
        var rawToDescending = [Int](repeating: 0, count: raw.count)
        for index in raw.indices.reversed() {
            let candidate = raw[index]
            if let last = mergedDescending.last, last.pagesPerZspage == candidate.pagesPerZspage,
                last.objectsPerZspage == candidate.objectsPerZspage
            {
                rawToDescending[index] = mergedDescending.count - 1
            } else {
                mergedDescending.append(candidate)
                rawToDescending[index] = mergedDescending.count - 1
            }
        }
        let count = mergedDescending.count
        return (mergedDescending.reversed(), rawToDescending.map { count - 1 - $0 })
    }

    /// The merged classes, ascending by size. The last one is the huge class.
    static let classes: [SizeClassInfo] = merge(rawClasses()).classes

    /// For each raw class index, the index into ``classes`` serving it.
    static let rawToMerged: [Int] = merge(rawClasses()).rawToMerged

    /// Index of the huge class in ``classes``.
    static let hugeClassIndex: Int = {
        let index = classes.count - 1
        precondition(classes[index].isHuge, "the largest merged class must be the 1-page, 1-object huge class")
        precondition(classes.dropLast().allSatisfy { !$0.isHuge }, "only the top classes may be huge")
        return index
    }()

    /// Largest payload stored in a normal class: the size of the biggest
    /// non-huge class (objects have no header). 3632 with this table: 9
    /// objects in 8 pages. The kernel's `huge_class_size` is 3625 (3632
    /// minus its 8-byte header, expressed as "at least"; ours is "at most").
    static let hugeThreshold: Int = classes[hugeClassIndex - 1].payloadCapacity

    /// The merged class index for a payload of `length` bytes (1...4096).
    ///
    /// - Complexity: O(1).
    static func classIndex(forPayload length: Int, rawToMerged: UnsafePointer<UInt8>) -> Int {
        if length > hugeThreshold { return hugeClassIndex }
        let slot = max(length, minimumSize)
        return Int(rawToMerged[(slot - minimumSize + sizeDelta - 1) / sizeDelta])
    }
}
