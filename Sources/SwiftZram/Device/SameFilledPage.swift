/// zram's same-filled pages: every 8-byte word equals the first, so the
/// word alone describes the page and nothing is allocated for it.
enum SameFilledPage {
    /// The repeated word if `page` (4096 bytes, 8-byte aligned or not) is same-filled.
    /// - Complexity: O(n), stopping at the first differing word.
    @inline(__always)
    static func fillWord(of page: UnsafeRawBufferPointer) -> UInt64? {
        let base = page.baseAddress!
        let first = base.loadUnaligned(as: UInt64.self)
        // Check the last word first: most pages that differ, differ there too.
        if base.loadUnaligned(fromByteOffset: pageSize - 8, as: UInt64.self) != first { return nil }
        var offset = 8
        while offset < pageSize {
            if base.loadUnaligned(fromByteOffset: offset, as: UInt64.self) != first { return nil }
            offset &+= 8
        }
        return first
    }

    /// Fills `destination` (any length, any alignment) with the repeated word, starting
    /// `phase` bytes into the page so that partial pages read correctly.
    @inline(__always)
    static func fill(_ destination: UnsafeMutableRawBufferPointer, with word: UInt64, phase: Int) {
        guard let base = destination.baseAddress, destination.count > 0 else { return }
        if word == 0 {
            base.initializeMemory(as: UInt8.self, repeating: 0, count: destination.count)
            return
        }
        if phase & 7 == 0 {
            let words = destination.count / 8
            for i in 0..<words {
                base.storeBytes(of: word, toByteOffset: i &* 8, as: UInt64.self)
            }
            var i = words &* 8
            while i < destination.count {
                base.storeBytes(of: byte(of: word, at: i), toByteOffset: i, as: UInt8.self)
                i &+= 1
            }
        } else {
            for i in 0..<destination.count {
                base.storeBytes(of: byte(of: word, at: phase &+ i), toByteOffset: i, as: UInt8.self)
            }
        }
    }

    @inline(__always)
    private static func byte(of word: UInt64, at pageOffset: Int) -> UInt8 {
        // Little-endian: byte k of the word sits at offset k of each 8-byte group.
        UInt8(truncatingIfNeeded: word >> UInt64((pageOffset & 7) &* 8))
    }
}

/// The page size zram works in.
public let pageSize = 4096
