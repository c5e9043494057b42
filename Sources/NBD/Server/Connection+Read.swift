/// READ and BLOCK_STATUS: the commands whose replies carry data.
extension Connection {
    func serveRead(_ req: NBDRequest, on export: any BlockExport) {
        let len = Int(req.length)
        guard len <= core.configuration.maxPayload else {
            return replyStatus(req.cookie, NBDError.overflow.rawValue, structuredError: true)
        }
        guard req.fits(in: export.size) else {
            return replyStatus(req.cookie, NBDError.inval.rawValue, structuredError: true)
        }
        if len == 0 { return replyStatus(req.cookie, 0, structuredError: true) }
        if session.structuredReplies {
            readStructured(req, on: export)
        } else {
            readSimple(req, on: export)
        }
    }

    /// Simple reply: header then data, the data read straight into the reply buffer.
    private func readSimple(_ req: NBDRequest, on export: any BlockExport) {
        let len = Int(req.length)
        let need = NBDReply.simpleHeaderSize + len
        if need > out.free && !out.flush(fd) { return }
        if need <= out.free {
            let p = out.tail()
            do {
                try export.read(into: UnsafeMutableRawBufferPointer(start: p + NBDReply.simpleHeaderSize, count: len), at: req.offset)
                NBDReply.simple(p, error: 0, cookie: req.cookie)
                out.commit(need)
            } catch {
                replyStatus(req.cookie, Self.wireError(error))
            }
            return
        }
        guard let b = core.pool.acquire(len) else { return replyStatus(req.cookie, NBDError.nomem.rawValue) }
        do {
            try export.read(into: UnsafeMutableRawBufferPointer(start: b.base, count: len), at: req.offset)
        } catch {
            core.pool.release(b)
            return replyStatus(req.cookie, Self.wireError(error))
        }
        NBDReply.simple(out.tail(), error: 0, cookie: req.cookie)
        out.commit(NBDReply.simpleHeaderSize)
        out.appendExternal(b.base, len)
        out.hold(b)
        _ = out.flush(fd)
    }

    /// Splits a READ into data and hole runs from the export's block status.
    /// Returns the run count (0 when the export could not tell).
    private func holeRuns(_ req: NBDRequest, on export: any BlockExport) -> Int {
        let total = UInt64(req.length)
        var covered: UInt64 = 0
        var n = 0
        let runs = self.runs!
        do {
            try export.blockStatus(offset: req.offset, length: total) { length, flags in
                let l = min(length, total - covered)
                if l == 0 { return covered < total }
                let hole = flags.contains(.zero)
                if n > 0 && runs[n - 1].1 == hole {
                    runs[n - 1].0 += l
                } else if n == Self.maxRuns - 1 {
                    return false
                } else {
                    runs[n] = (l, hole)
                    n += 1
                }
                covered += l
                return covered < total
            }
        } catch {
            return 0
        }
        if covered < total {
            if n > 0 && !runs[n - 1].1 {
                runs[n - 1].0 += total - covered
            } else {
                runs[n] = (total - covered, false)
                n += 1
            }
        }
        return n
    }

    /// Structured reply: OFFSET_DATA and OFFSET_HOLE chunks, the last one flagged DONE.
    private func readStructured(_ req: NBDRequest, on export: any BlockExport) {
        let len = Int(req.length)
        let df = req.flags & NBDCommandFlags.df.rawValue != 0
        var nruns = 0
        if !df && len >= core.configuration.holeDetectionMinimum { nruns = holeRuns(req, on: export) }
        if nruns == 0 {
            runs[0] = (UInt64(len), false)
            nruns = 1
        }
        let headerBytes = nruns * (NBDReply.chunkHeaderSize + 12)
        let dataInArena = headerBytes + len <= out.capacity
        if out.free < headerBytes + (dataInArena ? len : 0) && !out.flush(fd) { return }
        let mark = out.mark()
        var big: PooledBuffer?
        if !dataInArena {
            guard let b = core.pool.acquire(len) else {
                return replyChunkStatus(req.cookie, NBDError.nomem.rawValue)
            }
            out.hold(b)
            big = b
        }
        var rel = 0
        do {
            for i in 0..<nruns {
                let (rlen64, hole) = runs[i]
                let rlen = Int(rlen64)
                let flags: UInt16 = i == nruns - 1 ? nbdReplyFlagDone : 0
                let offset = req.offset + UInt64(rel)
                let p = out.tail()
                if hole {
                    NBDReply.chunk(p, flags: flags, type: .offsetHole, cookie: req.cookie, length: 12)
                    p.putBE(offset, 20)
                    p.putBE(UInt32(rlen), 28)
                    out.commit(32)
                } else {
                    NBDReply.chunk(p, flags: flags, type: .offsetData, cookie: req.cookie, length: UInt32(8 + rlen))
                    p.putBE(offset, 20)
                    out.commit(28)
                    if let big {
                        let d = big.base + rel
                        try export.read(into: UnsafeMutableRawBufferPointer(start: d, count: rlen), at: offset)
                        out.appendExternal(d, rlen)
                    } else {
                        try export.read(into: UnsafeMutableRawBufferPointer(start: out.tail(), count: rlen), at: offset)
                        out.commit(rlen)
                    }
                }
                rel += rlen
            }
        } catch {
            out.rollback(to: mark)
            return replyChunkStatus(req.cookie, Self.wireError(error))
        }
        if big != nil { _ = out.flush(fd) }
    }

    /// BLOCK_STATUS for `base:allocation`: one BLOCK_STATUS chunk of merged extents.
    func serveBlockStatus(_ req: NBDRequest, on export: any BlockExport) {
        guard session.baseAllocation else {
            return replyStatus(req.cookie, NBDError.inval.rawValue, structuredError: true)
        }
        guard req.fits(in: export.size) else {
            return replyStatus(req.cookie, NBDError.inval.rawValue, structuredError: true)
        }
        if req.length == 0 { return replyChunkStatus(req.cookie, 0) }
        let maxExtents = req.flags & NBDCommandFlags.reqOne.rawValue != 0 ? 1 : 256
        let need = NBDReply.chunkHeaderSize + 4 + 8 * maxExtents
        if out.free < need && !out.flush(fd) { return }
        let p = out.tail()
        let total = UInt64(req.length)
        var covered: UInt64 = 0
        var n = 0
        var lastLength: UInt32 = 0
        var lastFlags: UInt32 = 0
        do {
            try export.blockStatus(offset: req.offset, length: total) { length, flags in
                let l = min(length, total - covered)
                if l == 0 { return covered < total }
                if n > 0 && lastFlags == flags.rawValue {
                    lastLength += UInt32(l)
                } else if n == maxExtents {
                    return false
                } else {
                    n += 1
                    lastLength = UInt32(l)
                    lastFlags = flags.rawValue
                }
                let e = p + NBDReply.chunkHeaderSize + 4 + 8 * (n - 1)
                e.putBE(lastLength, 0)
                e.putBE(lastFlags, 4)
                covered += l
                return covered < total
            }
        } catch {
            return replyChunkStatus(req.cookie, Self.wireError(error))
        }
        if n == 0 {
            p.putBE(UInt32(total), NBDReply.chunkHeaderSize + 4)
            p.putBE(UInt32(0), NBDReply.chunkHeaderSize + 8)
            n = 1
        }
        NBDReply.chunk(p, flags: nbdReplyFlagDone, type: .blockStatus, cookie: req.cookie, length: UInt32(4 + 8 * n))
        p.putBE(NBDMetaContext.baseAllocationID, NBDReply.chunkHeaderSize)
        out.commit(NBDReply.chunkHeaderSize + 4 + 8 * n)
    }
}
