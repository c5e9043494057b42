/// Queuing replies without data.
extension TransmissionLoop {
    /// Queues a simple reply: magic, error, cookie.
    @inline(__always)
    func replySimple(_ cookie: UInt64, error: UInt32) {
        if replies.free < NBDReply.simpleHeaderSize { _ = replies.flush(to: transport) }
        NBDReply.simple(replies.tail(), error: error, cookie: cookie)
        replies.commit(NBDReply.simpleHeaderSize)
    }

    /// Queues an error reply: a final ERROR chunk where the request needs chunks, a simple reply otherwise.
    func replyError(_ request: NBDRequest, _ error: UInt32) {
        if session.structuredReplies && request.errorNeedsChunk {
            replyFinalChunk(request.cookie, error: error)
        } else {
            replySimple(request.cookie, error: error)
        }
    }

    /// Queues the success reply of a request without data.
    @inline(__always)
    func replySuccess(_ request: NBDRequest) {
        if session.structuredReplies && request.errorNeedsChunk {
            replyFinalChunk(request.cookie, error: 0)
        } else {
            replySimple(request.cookie, error: 0)
        }
    }

    /// Queues a final structured chunk: NONE on success, ERROR otherwise.
    func replyFinalChunk(_ cookie: UInt64, error: UInt32) {
        if replies.free < 64 { _ = replies.flush(to: transport) }
        if error == 0 {
            NBDReply.chunk(replies.tail(), flags: nbdReplyFlagDone, type: .none, cookie: cookie, length: 0)
            replies.commit(NBDReply.chunkHeaderSize)
        } else {
            let size = NBDReply.errorChunk(
                replies.tail(), error: error, cookie: cookie, message: UnsafeRawBufferPointer(start: nil, count: 0))
            replies.commit(size)
        }
    }
}

extension BlockExportError {
    /// The error sent on the wire; codes the protocol does not define become EIO.
    var wireCode: UInt32 { NBDError(rawValue: code)?.rawValue ?? NBDError.io.rawValue }
}
