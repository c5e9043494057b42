/// WRITE, and the commands without data in either direction.
extension TransmissionLoop {
    /// Serves a request without payload (every command but WRITE and DISC).
    func serve(_ request: NBDRequest, on export: any BlockExport) {
        if let error = validate(request, exportSize: export.size) { return replyError(request, error.rawValue) }
        let fua = request.flags & NBDCommandFlags.fua.rawValue != 0
        do throws(BlockExportError) {
            switch request.command {
            case .read:
                return serveRead(request, on: export)
            case .blockStatus:
                return serveBlockStatus(request, on: export)
            case .flush:
                try export.flush()
            case .trim:
                if request.length > 0 { try export.trim(offset: request.offset, length: UInt64(request.length)) }
                if fua { try export.flush() }
            case .writeZeroes:
                // Zeroing is always fast here (no data is written), so FAST_ZERO needs nothing.
                let mayTrim = request.flags & NBDCommandFlags.noHole.rawValue == 0
                if request.length > 0 {
                    try export.writeZeroes(offset: request.offset, length: UInt64(request.length), mayTrim: mayTrim)
                }
                if fua { try export.flush() }
            case .cache:
                break
            case .write, .disconnect, nil:
                preconditionFailure("WRITE and DISC are served by the loop, unknown commands fail validation")
            }
            replySuccess(request)
        } catch {
            replyError(request, error.wireCode)
        }
    }

    /// A WRITE whose payload is in the receive buffer; `backlogged` when more of the
    /// client's requests were received behind it.
    func serveWrite(_ request: NBDRequest, on export: any BlockExport, payload: UnsafeRawBufferPointer, backlogged: Bool) {
        if let error = validate(request, exportSize: export.size) { return replySimple(request.cookie, error: error.rawValue) }
        if payload.isEmpty { return replySimple(request.cookie, error: 0) }
        do throws(BlockExportError) {
            try export.write(payload, at: request.offset, backlogged: backlogged)
            if request.flags & NBDCommandFlags.fua.rawValue != 0 { try export.flush() }
            replySimple(request.cookie, error: 0)
        } catch {
            replySimple(request.cookie, error: error.wireCode)
        }
    }

    /// A WRITE whose payload does not fit the receive buffer (or exceeds the limit).
    /// The payload streams through the receive buffer and is written a buffer at a
    /// time, so no connection holds more than its buffers; a refused request's
    /// payload is read and dropped. Returns false when the connection died.
    mutating func serveLargeWrite(_ request: NBDRequest, on export: any BlockExport) -> Bool {
        var failure = validate(request, exportSize: export.size).map(\.rawValue)
        var remaining = Int(request.length)
        var offset = request.offset
        while remaining > 0 {
            let wanted = min(remaining, received.capacity)
            if received.unparsedCount < wanted {
                received.makeRoom(forRequestOf: wanted)
                // The client may wait for earlier replies before sending more; send them first.
                guard replies.flush(to: transport) else { return false }
                while received.unparsedCount < wanted {
                    guard case .bytes(let n) = transport.receive(into: received.freeSpace) else { return false }
                    received.didReceive(n)
                }
            }
            let piece = min(received.unparsedCount, remaining)
            if failure == nil {
                do throws(BlockExportError) {
                    try export.write(UnsafeRawBufferPointer(start: received.unparsed, count: piece), at: offset)
                } catch {
                    failure = error.wireCode
                }
            }
            received.consume(piece)
            offset &+= UInt64(piece)  // a refused request's offset may be near UInt64.max
            remaining -= piece
        }
        if failure == nil && request.flags & NBDCommandFlags.fua.rawValue != 0 {
            do throws(BlockExportError) { try export.flush() } catch { failure = error.wireCode }
        }
        replySimple(request.cookie, error: failure ?? 0)
        return true
    }
}
