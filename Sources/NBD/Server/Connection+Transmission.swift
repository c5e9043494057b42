#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Transmission: batched reads, requests served in order, replies of a batch sent together.
extension Connection {
    /// Serves requests until the client disconnects, sends NBD_CMD_DISC or breaks the protocol.
    func transmit(leftover: [UInt8]) {
        let config = core.configuration
        rcap = max(config.connectionBufferSize, 64 << 10)
        rbuf = .allocate(byteCount: rcap, alignment: 4096)
        runs = .allocate(capacity: Self.maxRuns)
        out = ReplyQueue(capacity: max(config.connectionBufferSize, 64 << 10), pool: core.pool)
        leftover.withUnsafeBytes { b in
            if b.count > 0 { rbuf.copyMemory(from: b.baseAddress!, byteCount: b.count) }
        }
        rend = leftover.count
        // Passed down as a parameter: a borrowed reference costs no retain/release per request.
        let export: any BlockExport = self.export
        let maxPayload = config.maxPayload
        let header = NBDRequest.headerSize
        let spin = config.receiveSpin
        var spinning = spin > .zero

        while true {
            // Serve every complete request in the buffer.
            var need = header
            var served = 0
            while rend - rstart >= header {
                guard let req = NBDRequest.parse(rbuf + rstart) else {
                    logger.info("bad request magic; closing")
                    _ = out.flush(fd)
                    return
                }
                if req.hasPayload {
                    let len = Int(req.length)
                    if header + len <= rcap && len <= maxPayload {
                        guard rend - rstart >= header + len else {
                            need = header + len
                            break
                        }
                        serveWrite(req, on: export, payload: UnsafeRawBufferPointer(start: rbuf + rstart + header, count: len))
                        rstart += header + len
                    } else {
                        rstart += header
                        guard serveLargeWrite(req, on: export) else { return }
                    }
                } else {
                    rstart += header
                    if req.type == NBDCommand.disconnect.rawValue {
                        _ = out.flush(fd)
                        logger.debug("client disconnected")
                        return
                    }
                    serve(req, on: export)
                }
                served += 1
                if out.shouldFlush && !out.flush(fd) { return }
            }
            // Make room for the rest of a partial request, then wait for more bytes.
            if rstart == rend {
                rstart = 0
                rend = 0
            } else if rstart + need > rcap || rend == rcap {
                (rbuf).copyMemory(from: rbuf + rstart, byteCount: rend - rstart)
                rend -= rstart
                rstart = 0
            }
            guard out.flush(fd) else { return }
            // Spin only after a batch of one request: deeper queues batch better by sleeping.
            let n = receiveBatch(spin: served <= 1 ? spin : .zero, spinning: &spinning)
            guard n > 0 else { return }
            rend += n
        }
    }

    /// Receives what is there into the free end of the buffer.
    ///
    /// Adaptive spin: a client in a request/reply ping-pong (queue depth 1) sends
    /// its next request a few microseconds after our reply. Catching it with
    /// non-blocking receives for up to `spin` saves the wake-up of an idle (virtual) CPU, which
    /// dominates latency there.
    /// The spin is only used while the client keeps coming back quickly: after a
    /// wait longer than `spinWorthwhile` the connection blocks straight away until
    /// a quick return shows it is busy again, so idle clients cost nothing.
    private func receiveBatch(spin: Duration, spinning: inout Bool) -> Int {
        let clock = ContinuousClock()
        if spinning && spin > .zero {
            let until = clock.now + spin
            repeat {
                for _ in 0..<8 {
                    let n = recv(fd, rbuf + rend, rcap - rend, Int32(MSG_DONTWAIT))
                    if n >= 0 { return n }
                    if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR { return -1 }
                }
            } while clock.now < until
        }
        guard spin > .zero else { return SocketIO.receive(fd, rbuf + rend, rcap - rend) }
        let start = clock.now
        let n = SocketIO.receive(fd, rbuf + rend, rcap - rend)
        spinning = clock.now - start < Self.spinWorthwhile
        return n
    }

    /// A wait shorter than this marks the client as busy enough to spin for.
    static let spinWorthwhile: Duration = .microseconds(150)

    // MARK: - Payload handling

    /// Moves the next `count` payload bytes into `dest`, or drops them when `dest` is nil.
    private func consumePayload(_ count: Int, into dest: UnsafeMutableRawPointer?) -> Bool {
        let buffered = min(rend - rstart, count)
        if let dest, buffered > 0 { dest.copyMemory(from: rbuf + rstart, byteCount: buffered) }
        rstart += buffered
        var remaining = count - buffered
        if remaining == 0 { return true }
        rstart = 0
        rend = 0
        // The client may wait for earlier replies before sending more; send them first.
        guard out.flush(fd) else { return false }
        if let dest { return SocketIO.receiveExactly(fd, dest + buffered, remaining) }
        while remaining > 0 {
            let n = SocketIO.receive(fd, rbuf, min(rcap, remaining))
            guard n > 0 else { return false }
            remaining -= n
        }
        return true
    }

    /// A WRITE whose payload does not fit the receive buffer (or exceeds the limit).
    /// Returns false when the connection died.
    private func serveLargeWrite(_ req: NBDRequest, on export: any BlockExport) -> Bool {
        let len = Int(req.length)
        if let error = checkWrite(req, on: export) {
            guard consumePayload(len, into: nil) else { return false }
            replyStatus(req.cookie, error)
            return true
        }
        guard len <= core.configuration.maxPayload else {
            guard consumePayload(len, into: nil) else { return false }
            replyStatus(req.cookie, NBDError.overflow.rawValue)
            return true
        }
        guard let buffer = core.pool.acquire(len) else {
            guard consumePayload(len, into: nil) else { return false }
            replyStatus(req.cookie, NBDError.nomem.rawValue)
            return true
        }
        defer { core.pool.release(buffer) }
        guard consumePayload(len, into: buffer.base) else { return false }
        serveWrite(req, on: export, payload: UnsafeRawBufferPointer(start: buffer.base, count: len))
        return true
    }

    // MARK: - Commands

    /// Flags each command accepts; FUA is harmless everywhere.
    @inline(__always)
    private func flagsValid(_ req: NBDRequest) -> Bool {
        var allowed = NBDCommandFlags.fua.rawValue
        switch NBDCommand(rawValue: req.type) {
        case .read: if session.structuredReplies { allowed |= NBDCommandFlags.df.rawValue }
        case .writeZeroes: allowed |= NBDCommandFlags([.noHole, .fastZero]).rawValue
        case .blockStatus: allowed |= NBDCommandFlags.reqOne.rawValue
        default: break
        }
        return req.flags & ~allowed == 0
    }

    @inline(__always)
    private func checkWrite(_ req: NBDRequest, on export: any BlockExport) -> UInt32? {
        guard flagsValid(req) else { return NBDError.inval.rawValue }
        guard req.fits(in: export.size) else { return NBDError.nospc.rawValue }
        return nil
    }

    private func serveWrite(_ req: NBDRequest, on export: any BlockExport, payload: UnsafeRawBufferPointer) {
        if let error = checkWrite(req, on: export) { return replyStatus(req.cookie, error) }
        if payload.isEmpty { return replyStatus(req.cookie, 0) }
        do {
            try export.write(payload, at: req.offset)
            if req.flags & NBDCommandFlags.fua.rawValue != 0 { try export.flush() }
            replyStatus(req.cookie, 0)
        } catch {
            replyStatus(req.cookie, Self.wireError(error))
        }
    }

    private func serve(_ req: NBDRequest, on export: any BlockExport) {
        guard let command = NBDCommand(rawValue: req.type), flagsValid(req) else {
            return replyStatus(req.cookie, NBDError.inval.rawValue, structuredError: true)
        }
        let fua = req.flags & NBDCommandFlags.fua.rawValue != 0
        do throws(BlockExportError) {
            switch command {
            case .read:
                return serveRead(req, on: export)
            case .blockStatus:
                return serveBlockStatus(req, on: export)
            case .flush:
                try export.flush()
            case .trim:
                guard req.fits(in: export.size) else { return replyStatus(req.cookie, NBDError.inval.rawValue) }
                if req.length > 0 { try export.trim(offset: req.offset, length: UInt64(req.length)) }
                if fua { try export.flush() }
            case .writeZeroes:
                guard req.fits(in: export.size) else { return replyStatus(req.cookie, NBDError.nospc.rawValue) }
                // Zeroing is always fast here (no data is written), so FAST_ZERO needs nothing.
                let mayTrim = req.flags & NBDCommandFlags.noHole.rawValue == 0
                if req.length > 0 { try export.writeZeroes(offset: req.offset, length: UInt64(req.length), mayTrim: mayTrim) }
                if fua { try export.flush() }
            case .cache:
                guard req.fits(in: export.size) else { return replyStatus(req.cookie, NBDError.inval.rawValue) }
            case .write, .disconnect:
                preconditionFailure("WRITE and DISC are handled by the transmission loop")
            }
            replyStatus(req.cookie, 0)
        } catch {
            replyStatus(req.cookie, Self.wireError(error))
        }
    }

    /// The wire error for a store failure; codes the protocol does not define become EIO.
    static func wireError(_ e: BlockExportError) -> UInt32 {
        NBDError(rawValue: e.code)?.rawValue ?? NBDError.io.rawValue
    }

    /// Queues a reply without data: simple, or (for READ/BLOCK_STATUS errors with
    /// structured replies) a final NONE/ERROR chunk.
    @inline(__always)
    func replyStatus(_ cookie: UInt64, _ error: UInt32, structuredError: Bool = false) {
        if structuredError && session.structuredReplies {
            return replyChunkStatus(cookie, error)
        }
        if out.free < NBDReply.simpleHeaderSize { _ = out.flush(fd) }
        NBDReply.simple(out.tail(), error: error, cookie: cookie)
        out.commit(NBDReply.simpleHeaderSize)
    }

    /// A final structured chunk: NONE on success, ERROR otherwise.
    func replyChunkStatus(_ cookie: UInt64, _ error: UInt32) {
        if out.free < 64 { _ = out.flush(fd) }
        if error == 0 {
            NBDReply.chunk(out.tail(), flags: nbdReplyFlagDone, type: .none, cookie: cookie, length: 0)
            out.commit(NBDReply.chunkHeaderSize)
        } else {
            let n = NBDReply.errorChunk(out.tail(), error: error, cookie: cookie, message: UnsafeRawBufferPointer(start: nil, count: 0))
            out.commit(n)
        }
    }
}
