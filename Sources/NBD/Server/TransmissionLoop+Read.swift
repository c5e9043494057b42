/// READ and BLOCK_STATUS: the commands whose replies carry data. Requests
/// arrive here validated.
extension TransmissionLoop {
    func serveRead(_ request: NBDRequest, on export: any BlockExport) {
        if request.length == 0 { return replySuccess(request) }
        if session.structuredReplies {
            readStructured(request, on: export)
        } else {
            readSimple(request, on: export)
        }
    }

    /// Simple reply: header then data, the data read straight into the reply buffer.
    private func readSimple(_ request: NBDRequest, on export: any BlockExport) {
        let length = Int(request.length)
        let needed = NBDReply.simpleHeaderSize + length
        if needed > replies.free && !replies.flush(to: transport) { return }
        if needed <= replies.free {
            let reply = replies.tail()
            do throws(BlockExportError) {
                let data = UnsafeMutableRawBufferPointer(start: reply + NBDReply.simpleHeaderSize, count: length)
                try export.read(into: data, at: request.offset)
                NBDReply.simple(reply, error: 0, cookie: request.cookie)
                replies.commit(needed)
            } catch {
                replySimple(request.cookie, error: error.wireCode)
            }
            return
        }
        guard let buffer = core.pool.acquire(length) else {
            return replySimple(request.cookie, error: NBDError.nomem.rawValue)
        }
        do throws(BlockExportError) {
            try export.read(into: UnsafeMutableRawBufferPointer(start: buffer.base, count: length), at: request.offset)
        } catch {
            core.pool.release(buffer)
            return replySimple(request.cookie, error: error.wireCode)
        }
        NBDReply.simple(replies.tail(), error: 0, cookie: request.cookie)
        replies.commit(NBDReply.simpleHeaderSize)
        replies.appendExternal(buffer.base, length)
        replies.hold(buffer)
        _ = replies.flush(to: transport)
    }

    /// Splits a READ into data and hole runs (in `readRuns`) from the export's block status.
    /// Returns the run count, 0 when the export could not tell.
    private func findHoles(_ request: NBDRequest, on export: any BlockExport) -> Int {
        let total = UInt64(request.length)
        let runs = readRuns
        let maxRuns = Self.maxReadRuns
        var covered: UInt64 = 0
        var count = 0
        do throws(BlockExportError) {
            try export.blockStatus(offset: request.offset, length: total) { length, flags in
                let clipped = min(length, total - covered)
                if clipped == 0 { return covered < total }
                let isHole = flags.contains(.zero)
                if count > 0 && runs[count - 1].isHole == isHole {
                    runs[count - 1].length += clipped
                } else if count == maxRuns - 1 {
                    return false
                } else {
                    runs[count] = ReadRun(length: clipped, isHole: isHole)
                    count += 1
                }
                covered += clipped
                return covered < total
            }
        } catch {
            return 0
        }
        if covered < total {
            if count > 0 && !runs[count - 1].isHole {
                runs[count - 1].length += total - covered
            } else {
                runs[count] = ReadRun(length: total - covered, isHole: false)
                count += 1
            }
        }
        return count
    }

    /// Structured reply: OFFSET_DATA and OFFSET_HOLE chunks, the last one flagged DONE.
    private func readStructured(_ request: NBDRequest, on export: any BlockExport) {
        let length = Int(request.length)
        let dontFragment = request.flags & NBDCommandFlags.df.rawValue != 0
        var runCount = 0
        if !dontFragment && length >= configuration.holeDetectionMinimum { runCount = findHoles(request, on: export) }
        if runCount == 0 {
            readRuns[0] = ReadRun(length: UInt64(length), isHole: false)
            runCount = 1
        }
        let headerBytes = runCount * (NBDReply.chunkHeaderSize + 12)
        let dataInArena = headerBytes + length <= replies.capacity
        if replies.free < headerBytes + (dataInArena ? length : 0) && !replies.flush(to: transport) { return }
        let mark = replies.mark()
        var pooled: PooledBuffer?
        if !dataInArena {
            guard let buffer = core.pool.acquire(length) else {
                return replyFinalChunk(request.cookie, error: NBDError.nomem.rawValue)
            }
            replies.hold(buffer)
            pooled = buffer
        }
        var done = 0
        do throws(BlockExportError) {
            for i in 0..<runCount {
                let run = readRuns[i]
                let runLength = Int(run.length)
                let flags: UInt16 = i == runCount - 1 ? nbdReplyFlagDone : 0
                let offset = request.offset + UInt64(done)
                let chunk = replies.tail()
                if run.isHole {
                    NBDReply.chunk(chunk, flags: flags, type: .offsetHole, cookie: request.cookie, length: 12)
                    chunk.putBE(offset, 20)
                    chunk.putBE(UInt32(runLength), 28)
                    replies.commit(32)
                } else {
                    NBDReply.chunk(chunk, flags: flags, type: .offsetData, cookie: request.cookie, length: UInt32(8 + runLength))
                    chunk.putBE(offset, 20)
                    replies.commit(28)
                    if let pooled {
                        let data = pooled.base + done
                        try export.read(into: UnsafeMutableRawBufferPointer(start: data, count: runLength), at: offset)
                        replies.appendExternal(data, runLength)
                    } else {
                        try export.read(into: UnsafeMutableRawBufferPointer(start: replies.tail(), count: runLength), at: offset)
                        replies.commit(runLength)
                    }
                }
                done += runLength
            }
        } catch {
            replies.rollback(to: mark)
            return replyFinalChunk(request.cookie, error: error.wireCode)
        }
        if pooled != nil { _ = replies.flush(to: transport) }
    }

    /// BLOCK_STATUS for `base:allocation`: one BLOCK_STATUS chunk of merged extents.
    func serveBlockStatus(_ request: NBDRequest, on export: any BlockExport) {
        if request.length == 0 { return replyFinalChunk(request.cookie, error: 0) }
        let maxExtents = request.flags & NBDCommandFlags.reqOne.rawValue != 0 ? 1 : 256
        let needed = NBDReply.chunkHeaderSize + 4 + 8 * maxExtents
        if replies.free < needed && !replies.flush(to: transport) { return }
        let chunk = replies.tail()
        let extents = chunk + NBDReply.chunkHeaderSize + 4
        let total = UInt64(request.length)
        var covered: UInt64 = 0
        var count = 0
        var lastLength: UInt32 = 0
        var lastFlags: UInt32 = 0
        do throws(BlockExportError) {
            try export.blockStatus(offset: request.offset, length: total) { length, flags in
                let clipped = min(length, total - covered)
                if clipped == 0 { return covered < total }
                if count > 0 && lastFlags == flags.rawValue {
                    lastLength += UInt32(clipped)
                } else if count == maxExtents {
                    return false
                } else {
                    count += 1
                    lastLength = UInt32(clipped)
                    lastFlags = flags.rawValue
                }
                let extent = extents + 8 * (count - 1)
                extent.putBE(lastLength, 0)
                extent.putBE(lastFlags, 4)
                covered += clipped
                return covered < total
            }
        } catch {
            return replyFinalChunk(request.cookie, error: error.wireCode)
        }
        if count == 0 {
            extents.putBE(UInt32(total), 0)
            extents.putBE(UInt32(0), 4)
            count = 1
        }
        NBDReply.chunk(chunk, flags: nbdReplyFlagDone, type: .blockStatus, cookie: request.cookie, length: UInt32(4 + 8 * count))
        chunk.putBE(NBDMetaContext.baseAllocationID, NBDReply.chunkHeaderSize)
        replies.commit(NBDReply.chunkHeaderSize + 4 + 8 * count)
    }
}
