/// Reading and freeing written-back pages. A written-back slot's payload is the
/// byte offset of its object in the backing store; its state keeps the object's
/// size (a whole page means raw) and the priority of the algorithm that made it.
///
/// Reads come from the store and leave the page there: the kernel does not promote
/// a written-back page back to RAM either. Promotion would undo writeback under a
/// streaming read (a backup, a scrub) and turn each such read into a read plus a
/// later second writeback. A page returns to RAM only when it is written.
///
/// The caller holds the page's lock across the store read, so an overwrite cannot
/// free (and a writeback reuse) the room while it is being read. Only threads
/// touching the same page wait, and the page lock sleeps after a short spin.
extension ZramStore {
    /// Decodes a written-back page into `destination` (4096 bytes).
    /// - Parameter stream: the caller's stream; without one, a stream is taken for the read.
    /// - Throws: `EIO` (counted in failed_reads) when the store fails or the object does not decompress.
    func decodeWrittenBack(
        _ state: PageState, payload: UInt64, into destination: UnsafeMutableRawBufferPointer,
        stream: CompressionStream?
    ) throws(ZramError) {
        if let stream {
            try decodeWrittenBack(state, at: payload, into: destination, stream: stream)
        } else {
            try compressors.withStream { stream throws(ZramError) in
                try decodeWrittenBack(state, at: payload, into: destination, stream: stream)
            }
        }
    }

    /// Reads `destination.count` bytes at `offset` of a written-back page.
    func readWrittenBack(
        _ state: PageState, payload: UInt64, into destination: UnsafeMutableRawBufferPointer, at offset: Int
    ) throws(ZramError) {
        try compressors.withStream { stream throws(ZramError) in
            if state.objectSize == pageSize {
                let object = try readBlocks(of: state, at: payload, into: stream)
                destination.baseAddress!.copyMemory(from: object + offset, byteCount: destination.count)
            } else {
                try decodeWrittenBack(state, at: payload, into: stream.workPage, stream: stream)
                destination.baseAddress!.copyMemory(from: stream.workPage.baseAddress! + offset, byteCount: destination.count)
            }
        }
    }

    private func decodeWrittenBack(
        _ state: PageState, at offset: UInt64, into destination: UnsafeMutableRawBufferPointer, stream: CompressionStream
    ) throws(ZramError) {
        let start = try readBlocks(of: state, at: offset, into: stream)
        let size = state.objectSize
        if size == pageSize {
            destination.baseAddress!.copyMemory(from: start, byteCount: pageSize)
            return
        }
        let object = UnsafeRawBufferPointer(start: start, count: size)
        let priority = state.priority
        let decompressed = priority == 0
            ? stream.decompress(object, into: destination)
            : recompressors.decompress(object, priority: priority, into: destination)
        guard decompressed else {
            counters.failedReads.wrappingAdd(1, ordering: .relaxed)
            throw ZramError(.ioError, "a written-back page failed to decompress")
        }
    }

    /// Reads the whole blocks that hold the object (one, or two if it straddled them)
    /// into the stream's output buffer (page-aligned and two pages long), so a store
    /// that bypasses the page cache gets the aligned request it needs.
    /// - Returns: where the object starts in the buffer.
    private func readBlocks(
        of state: PageState, at offset: UInt64, into stream: CompressionStream
    ) throws(ZramError) -> UnsafeMutableRawPointer {
        let first = offset & ~UInt64(pageSize - 1)
        let end = (offset + UInt64(state.objectSize) + UInt64(pageSize - 1)) & ~UInt64(pageSize - 1)
        do throws(ZramError) {
            guard let backing else { throw ZramError(.ioError, "the page was written back but the device has no backing store") }
            try backing.readPage(into: UnsafeMutableRawBufferPointer(start: stream.output, count: Int(end - first)), at: first)
            return stream.output + Int(offset - first)
        } catch {
            counters.failedReads.wrappingAdd(1, ordering: .relaxed)
            throw error
        }
    }

    /// Frees the backing room of a slot that left the written-back state.
    @inline(never)
    func releaseWrittenBack(_ state: PageState, payload: UInt64) {
        backing?.release(at: payload, bytes: state.objectSize)
    }
}
