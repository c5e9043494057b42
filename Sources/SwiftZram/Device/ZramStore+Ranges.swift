/// Byte-granular requests, split into pages. A request locks one page at a
/// time and takes a compression stream only while a page is compressed or
/// decompressed, so queued and same-filled pages never wait for a stream.
extension ZramStore {
    /// Calls `body(pageIndex, offsetInPage, rangeOffset, length)` for each page piece of the range.
    @inline(__always)
    func forEachPage<E: Error>(
        offset: UInt64, length: Int, _ body: (Int, Int, Int, Int) throws(E) -> Void
    ) throws(E) {
        var done = 0
        var position = Int(offset)
        while done < length {
            let inPage = position & (pageSize - 1)
            let count = min(pageSize - inPage, length - done)
            try body(position / pageSize, inPage, done, count)
            done += count
            position += count
        }
    }

    /// Reads the range; a large one, if `splittable`, is shared between this thread and the request helpers.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64, splittable: Bool = true) throws(ZramError) {
        if splittable, buffer.count >= RequestHelpers.minimumBytes, let helpers,
            try helpers.read(from: self, into: buffer.baseAddress!, offset: offset, length: buffer.count)
        {
        } else {
            try readPieces(into: buffer, at: offset)
        }
        counters.pagesRead.wrappingAdd(pagesTouched(offset: offset, length: buffer.count), ordering: .relaxed)
    }

    /// Reads the range on this thread (not counted in pagesRead): its whole pages one
    /// page ahead (``readWholePages(_:count:into:)``), partial edges page by page.
    func readPieces(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(ZramError) {
        let start = Int(offset), end = start + buffer.count
        let firstWhole = (start + pageSize - 1) / pageSize, endWhole = end / pageSize
        guard endWhole - firstWhole >= 2, let base = buffer.baseAddress else {
            try forEachPage(offset: offset, length: buffer.count) { index, inPage, at, count throws(ZramError) in
                let piece = UnsafeMutableRawBufferPointer(rebasing: buffer[at..<(at + count)])
                try readPage(index, into: piece, at: inPage)
            }
            return
        }
        let head = firstWhole * pageSize - start
        if head > 0 {
            try readPage(firstWhole - 1, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<head]), at: pageSize - head)
        }
        try readWholePages(firstWhole, count: endWhole - firstWhole, into: base + head)
        let tail = end - endWhole * pageSize
        if tail > 0 {
            try readPage(endWhole, into: UnsafeMutableRawBufferPointer(rebasing: buffer[(buffer.count - tail)...]), at: 0)
        }
    }

    func write(_ data: UnsafeRawBufferPointer, at offset: UInt64, backlogged: Bool = false) throws(ZramError) {
        let mayQueue = !backlogged || data.count > Self.backloggedInlineLimit
        try forEachPage(offset: offset, length: data.count) { index, inPage, at, count throws(ZramError) in
            let piece = UnsafeRawBufferPointer(rebasing: data[at..<(at + count)])
            if count == pageSize {
                try writePage(index, from: piece, mayQueue: mayQueue)
            } else {
                try writePartialPage(index, piece, at: inPage)
            }
        }
        counters.pagesWritten.wrappingAdd(pagesTouched(offset: offset, length: data.count), ordering: .relaxed)
    }

    /// Zeroes `length` bytes at `offset` of page `index` through read-modify-write.
    private func zeroPartialPage(_ index: Int, at inPage: Int, length: Int) throws(ZramError) {
        guard table.chunkExists(containing: index) else { return }  // never written: already zeros
        try withUnsafeTemporaryAllocation(byteCount: length, alignment: 8) { zeros throws(ZramError) in
            zeros.initializeMemory(as: UInt8.self, repeating: 0)
            try writePartialPage(index, UnsafeRawBufferPointer(zeros), at: inPage)
        }
    }

    /// Frees the whole pages of the range and zeroes its partial edges
    /// (discard, and write-zeroes that may punch holes).
    /// `keepAllocated` stores whole pages as same-filled zero pages instead (NBD_CMD_FLAG_NO_HOLE).
    func zeroRange(offset: UInt64, length: UInt64, keepAllocated: Bool) throws(ZramError) {
        guard length > 0 else { return }
        let end = offset + length
        let firstWhole = Int((offset + UInt64(pageSize) - 1) / UInt64(pageSize))
        let endWhole = Int(end / UInt64(pageSize))
        if firstWhole > endWhole {
            // The range lies inside one page.
            let index = Int(offset) / pageSize
            try zeroPartialPage(index, at: Int(offset) & (pageSize - 1), length: Int(length))
            return
        }
        if offset & UInt64(pageSize - 1) != 0 {
            let inPage = Int(offset) & (pageSize - 1)
            try zeroPartialPage(firstWhole - 1, at: inPage, length: pageSize - inPage)
        }
        if end & UInt64(pageSize - 1) != 0 {
            try zeroPartialPage(endWhole, at: 0, length: Int(end) & (pageSize - 1))
        }
        if keepAllocated {
            let zeroPage = EncodedPage(state: .same(0), payload: 0)
            for index in firstWhole..<max(firstWhole, endWhole) { install(zeroPage, in: try writableSlot(index)) }
        } else {
            freeWholePages(firstWhole..<max(firstWhole, endWhole))
        }
    }

    /// Frees pages, skipping chunks that were never allocated. Counts every page in notify_free, as zram does.
    private func freeWholePages(_ pages: Range<Int>) {
        var index = pages.lowerBound
        while index < pages.upperBound, let chunk = table.nextChunk(atOrAfter: index), chunk.firstPage < pages.upperBound {
            let start = max(index, chunk.firstPage)
            let chunkEnd = min(pages.upperBound, chunk.firstPage + PageTable.pagesPerChunk)
            for page in start..<chunkEnd { freePage(page) }
            index = chunk.firstPage + PageTable.pagesPerChunk
        }
        counters.notifyFree.wrappingAdd(pages.count, ordering: .relaxed)
    }

    /// Reports `base:allocation` status for the range as runs of equal flags.
    /// - Returns: false if `body` asked to stop.
    func blockStatus(offset: UInt64, length: UInt64, _ body: (UInt64, PageAllocation) -> Bool) {
        var position = offset
        let end = offset + length
        var runStatus: PageAllocation?
        var runLength: UInt64 = 0
        while position < end {
            let index = Int(position / UInt64(pageSize))
            let pieceEnd = min(end, UInt64(index + 1) * UInt64(pageSize))
            let status = allocation(ofPage: index)
            if status == runStatus {
                runLength += pieceEnd - position
            } else {
                if let previous = runStatus, !body(runLength, previous) { return }
                runStatus = status
                runLength = pieceEnd - position
            }
            position = pieceEnd
        }
        if let last = runStatus { _ = body(runLength, last) }
    }

    @inline(__always)
    private func allocation(ofPage index: Int) -> PageAllocation {
        guard let slot = table.existingSlot(index) else { return .unallocated }
        let state = slot.unlockedState
        if state.isLost { return .data }  // reads fail rather than give zeros
        if !state.isStored { return .unallocated }
        return state.isZeroFilled ? .zeroFilled : .data
    }

    private func pagesTouched(offset: UInt64, length: Int) -> Int {
        guard length > 0 else { return 0 }
        return Int((offset + UInt64(length) - 1) / UInt64(pageSize) - offset / UInt64(pageSize)) + 1
    }
}

/// How a page is stored, as NBD's `base:allocation` sees it.
public enum PageAllocation: Sendable, Hashable {
    /// Never written, discarded or freed: nothing allocated, reads as zeros.
    case unallocated
    /// Written with zeros: stored as a same-filled page, reads as zeros.
    case zeroFilled
    /// Holds data.
    case data
}
