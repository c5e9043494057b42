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
    /// - Throws: `EIO` (counted in failed_reads) when the store fails or the object does not decompress.
    func decodeWrittenBack(
        _ state: PageState, payload: UInt64, into destination: UnsafeMutableRawBufferPointer,
        stream: CompressionStream?
    ) throws(ZramError) {
        let size = state.objectSize
        do throws(ZramError) {
            guard let backing else { throw ZramError(.ioError, "the page was written back but the device has no backing store") }
            if size == pageSize {
                try backing.readPage(into: destination, at: payload)
                return
            }
            if let stream {
                try decompressWrittenBack(state, at: payload, into: destination, stream: stream, backing: backing)
            } else {
                try compressors.withStream { stream throws(ZramError) in
                    try decompressWrittenBack(state, at: payload, into: destination, stream: stream, backing: backing)
                }
            }
        } catch {
            counters.failedReads.wrappingAdd(1, ordering: .relaxed)
            throw error
        }
    }

    /// Reads `destination.count` bytes at `offset` of a written-back page: straight from
    /// the store when the object is raw, else through a stream's work page.
    func readWrittenBack(
        _ state: PageState, payload: UInt64, into destination: UnsafeMutableRawBufferPointer, at offset: Int
    ) throws(ZramError) {
        if state.objectSize == pageSize, let backing {
            do throws(ZramError) {
                try backing.readPage(into: destination, at: payload + UInt64(offset))
            } catch {
                counters.failedReads.wrappingAdd(1, ordering: .relaxed)
                throw error
            }
            return
        }
        try compressors.withStream { stream throws(ZramError) in
            try decodeWrittenBack(state, payload: payload, into: stream.workPage, stream: stream)
            destination.baseAddress!.copyMemory(from: stream.workPage.baseAddress! + offset, byteCount: destination.count)
        }
    }

    /// Reads the object into the stream's output buffer and decompresses it from there,
    /// with the algorithm of the priority that compressed it.
    private func decompressWrittenBack(
        _ state: PageState, at offset: UInt64, into destination: UnsafeMutableRawBufferPointer,
        stream: CompressionStream, backing: BackingTier
    ) throws(ZramError) {
        let object = UnsafeMutableRawBufferPointer(start: stream.output, count: state.objectSize)
        try backing.readPage(into: object, at: offset)
        let priority = state.priority
        let decompressed = priority == 0
            ? stream.decompress(UnsafeRawBufferPointer(object), into: destination)
            : recompressors.decompress(UnsafeRawBufferPointer(object), priority: priority, into: destination)
        guard decompressed else {
            throw ZramError(.ioError, "a written-back page failed to decompress")
        }
    }

    /// Frees the backing room of a slot that left the written-back state.
    @inline(never)
    func releaseWrittenBack(_ state: PageState, payload: UInt64) {
        backing?.release(at: payload, bytes: state.objectSize)
    }
}
