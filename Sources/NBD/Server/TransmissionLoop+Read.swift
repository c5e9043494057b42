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

    /// Simple reply: header then data, the data read straight into the reply arena.
    private func readSimple(_ request: NBDRequest, on export: any BlockExport) {
        let length = Int(request.length)
        // Flush first when the whole reply would fit an empty arena but not what is left.
        if NBDReply.simpleHeaderSize + min(length, 64 << 10) > replies.free && !replies.flush(to: transport) { return }
        let mark = replies.mark()
        NBDReply.simple(replies.tail(), error: 0, cookie: request.cookie)
        replies.commit(NBDReply.simpleHeaderSize)
        var sent = false
        switch queueData(from: export, at: request.offset, length: length, sent: &sent) {
        case .queued, .connectionLost:
            return
        case .exportFailed(let error):
            guard !sent else { return disconnectAfterPartialReply(request, error) }
            replies.rollback(to: mark)
            replySimple(request.cookie, error: error.wireCode)
        }
    }

    /// What became of data queued for a reply.
    enum DataOutcome {
        case queued
        /// The export failed; the data it did not read is not queued.
        case exportFailed(BlockExportError)
        case connectionLost
    }

    /// Reads `length` bytes at `offset` straight into the reply arena. When the arena
    /// fills it is sent before the next piece is read (and `sent` becomes true), so
    /// unsent replies never exceed the arena: a client that does not read blocks this
    /// connection rather than growing its memory.
    private func queueData(
        from export: any BlockExport, at offset: UInt64, length: Int, sent: inout Bool
    ) -> DataOutcome {
        var done = 0
        while done < length {
            var piece = min(replies.free, length - done)
            // Whole pages while more follows, so a store reads no page twice.
            if piece < length - done { piece &= ~4095 }
            if piece == 0 {
                guard replies.flush(to: transport) else { return .connectionLost }
                sent = true
                continue
            }
            do throws(BlockExportError) {
                let destination = UnsafeMutableRawBufferPointer(start: replies.tail(), count: piece)
                try export.read(into: destination, at: offset + UInt64(done))
            } catch {
                return .exportFailed(error)
            }
            replies.commit(piece)
            done += piece
        }
        return .queued
    }

    /// Queues `length` bytes at `offset` as OFFSET_DATA chunks of at most an arena each,
    /// every chunk committed only once its data was read. An export failure therefore
    /// leaves only whole chunks of good data queued or sent, and the reply can still end
    /// with an ERROR chunk. `final` flags the last chunk DONE.
    private func queueDataChunks(
        _ request: NBDRequest, from export: any BlockExport, at offset: UInt64, length: Int, final: Bool,
        sent: inout Bool
    ) -> DataOutcome {
        let header = NBDReply.chunkHeaderSize + 8
        var done = 0
        while done < length {
            var piece = min(replies.free - header, length - done)
            if piece < length - done { piece &= ~4095 }
            if piece <= 0 {
                guard replies.flush(to: transport) else { return .connectionLost }
                sent = true
                continue
            }
            let chunk = replies.tail()
            let chunkOffset = offset + UInt64(done)
            do throws(BlockExportError) {
                try export.read(into: UnsafeMutableRawBufferPointer(start: chunk + header, count: piece), at: chunkOffset)
            } catch {
                return .exportFailed(error)
            }
            let flags: UInt16 = final && done + piece == length ? nbdReplyFlagDone : 0
            NBDReply.chunk(chunk, flags: flags, type: .offsetData, cookie: request.cookie, length: UInt32(8 + piece))
            chunk.putBE(chunkOffset, NBDReply.chunkHeaderSize)
            replies.commit(header + piece)
            done += piece
        }
        return .queued
    }

    /// The export failed after part of a reply had gone out: the reply cannot be
    /// completed or withdrawn, so the protocol requires a hard disconnect.
    private func disconnectAfterPartialReply(_ request: NBDRequest, _ error: BlockExportError) {
        logger.error(
            "read failed after its reply began; disconnecting",
            metadata: ["offset": "\(request.offset)", "length": "\(request.length)", "error": "\(error.message)"])
        transport.shutdown()
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
        let chunkHeaders = runCount * (NBDReply.chunkHeaderSize + 12)
        if chunkHeaders + min(length, 64 << 10) > replies.free && !replies.flush(to: transport) { return }
        let mark = replies.mark()
        var sent = false
        var offset = request.offset
        for i in 0..<runCount {
            let run = readRuns[i]
            let flags: UInt16 = i == runCount - 1 ? nbdReplyFlagDone : 0
            if replies.free < NBDReply.chunkHeaderSize + 12 {
                guard replies.flush(to: transport) else { return }
                sent = true
            }
            let chunk = replies.tail()
            if run.isHole {
                NBDReply.chunk(chunk, flags: flags, type: .offsetHole, cookie: request.cookie, length: 12)
                chunk.putBE(offset, 20)
                chunk.putBE(UInt32(run.length), 28)
                replies.commit(32)
            } else if dontFragment {
                // One OFFSET_DATA chunk, its data streamed through the arena.
                NBDReply.chunk(chunk, flags: flags, type: .offsetData, cookie: request.cookie, length: UInt32(8 + run.length))
                chunk.putBE(offset, 20)
                replies.commit(28)
                switch queueData(from: export, at: offset, length: Int(run.length), sent: &sent) {
                case .queued:
                    break
                case .connectionLost:
                    return
                case .exportFailed(let error):
                    guard !sent else { return disconnectAfterPartialReply(request, error) }
                    replies.rollback(to: mark)
                    return replyFinalChunk(request.cookie, error: error.wireCode)
                }
            } else {
                switch queueDataChunks(request, from: export, at: offset, length: Int(run.length), final: flags != 0, sent: &sent) {
                case .queued:
                    break
                case .connectionLost:
                    return
                case .exportFailed(let error):
                    // Chunks already sent carry good data; the final ERROR chunk fails the read.
                    if !sent { replies.rollback(to: mark) }
                    return replyFinalChunk(request.cookie, error: error.wireCode)
                }
            }
            offset += run.length
        }
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
