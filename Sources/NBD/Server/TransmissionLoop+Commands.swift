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

    /// A WRITE whose payload is in the receive buffer.
    func serveWrite(_ request: NBDRequest, on export: any BlockExport, payload: UnsafeRawBufferPointer) {
        if let error = validate(request, exportSize: export.size) { return replySimple(request.cookie, error: error.rawValue) }
        if payload.isEmpty { return replySimple(request.cookie, error: 0) }
        do throws(BlockExportError) {
            try export.write(payload, at: request.offset)
            if request.flags & NBDCommandFlags.fua.rawValue != 0 { try export.flush() }
            replySimple(request.cookie, error: 0)
        } catch {
            replySimple(request.cookie, error: error.wireCode)
        }
    }

    /// A WRITE whose payload does not fit the receive buffer (or exceeds the limit): the
    /// payload goes to a pooled buffer, or is dropped when the request is refused.
    /// Returns false when the connection died.
    mutating func serveLargeWrite(_ request: NBDRequest, on export: any BlockExport) -> Bool {
        let length = Int(request.length)
        if let error = validate(request, exportSize: export.size) {
            guard receivePayload(length, into: nil) else { return false }
            replySimple(request.cookie, error: error.rawValue)
            return true
        }
        guard let buffer = core.pool.acquire(length) else {
            guard receivePayload(length, into: nil) else { return false }
            replySimple(request.cookie, error: NBDError.nomem.rawValue)
            return true
        }
        defer { core.pool.release(buffer) }
        guard receivePayload(length, into: buffer.base) else { return false }
        serveWrite(request, on: export, payload: UnsafeRawBufferPointer(start: buffer.base, count: length))
        return true
    }

    /// Moves the next `count` payload bytes into `destination`, or drops them when it is nil.
    /// Returns false when the connection died.
    private mutating func receivePayload(_ count: Int, into destination: UnsafeMutableRawPointer?) -> Bool {
        let buffered = received.take(upTo: count, into: destination)
        var remaining = count - buffered
        if remaining == 0 { return true }
        received.makeRoom(forRequestOf: 0)
        // The client may wait for earlier replies before sending more; send them first.
        guard replies.flush(to: transport) else { return false }
        if let destination {
            return transport.receiveExactly(into: UnsafeMutableRawBufferPointer(start: destination + buffered, count: remaining))
        }
        let scratch = received.freeSpace
        while remaining > 0 {
            guard case .bytes(let n) = transport.receive(into: UnsafeMutableRawBufferPointer(rebasing: scratch[..<min(scratch.count, remaining)])) else {
                return false
            }
            remaining -= n
        }
        return true
    }
}
