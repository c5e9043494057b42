/// One place that decides whether a request may be served, as nbdkit's
/// `validate_request` does: the command, its flags, the payload limit and the range.
extension TransmissionLoop {
    /// The error to answer `request` with, or nil when it may be served.
    @inline(__always)
    func validate(_ request: NBDRequest, exportSize: UInt64) -> NBDError? {
        guard let command = request.command else { return .inval }
        var allowedFlags = NBDCommandFlags.fua.rawValue  // harmless everywhere
        switch command {
        case .read: if session.structuredReplies { allowedFlags |= NBDCommandFlags.df.rawValue }
        case .writeZeroes: allowedFlags |= NBDCommandFlags([.noHole, .fastZero]).rawValue
        case .blockStatus: allowedFlags |= NBDCommandFlags.reqOne.rawValue
        default: break
        }
        guard request.flags & ~allowedFlags == 0 else { return .inval }
        switch command {
        case .read, .write:
            guard Int(request.length) <= configuration.maxPayload else { return .overflow }
        case .blockStatus:
            guard session.baseAllocation else { return .inval }
        case .flush, .disconnect:
            return nil
        case .trim, .writeZeroes, .cache:
            break
        }
        guard request.fits(in: exportSize) else {
            // Writing past the end is "no space"; anything else there is invalid.
            return command == .write || command == .writeZeroes ? .nospc : .inval
        }
        return nil
    }
}

extension NBDRequest {
    /// Whether an error reply to this request must be a structured chunk when structured
    /// replies were negotiated: READ and BLOCK_STATUS replies may carry data chunks, and
    /// an unknown command might too.
    var errorNeedsChunk: Bool {
        switch command {
        case .read, .blockStatus, nil: true
        default: false
        }
    }
}
