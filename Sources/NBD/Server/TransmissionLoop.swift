import Logging

/// Serves one connection's requests after the handshake: reads them in batches,
/// serves them in order on this thread and sends the replies of a batch together
/// (see README-design.md for why).
///
/// Built complete from an established session: its receive buffer, reply queue
/// and export exist for its whole life. Generic over the transport so the plain
/// socket path is specialised (no dynamic dispatch per receive or send).
struct TransmissionLoop<Transport: ConnectionTransport>: ~Copyable {
    let transport: Transport
    let session: NBDSession
    let core: ServerCore
    let configuration: NBDServerConfiguration
    let logger: Logger
    var received: ReceiveBuffer
    let replies: ReplyQueue
    /// Scratch for READ hole detection: the data and hole runs of one request.
    let readRuns: UnsafeMutablePointer<ReadRun>
    static var maxReadRuns: Int { 64 }
    /// Whether the client came back quickly enough last time to be worth spinning for.
    private var spinning: Bool

    init(transport: Transport, session: NBDSession, leftover: [UInt8], core: ServerCore, logger: Logger) {
        self.transport = transport
        self.session = session
        self.core = core
        self.logger = logger
        configuration = core.configuration
        received = ReceiveBuffer(capacity: max(configuration.connectionBufferSize, 64 << 10))
        received.append(leftover)
        replies = ReplyQueue(capacity: max(configuration.replyBufferSize, 64 << 10), accounting: core.replyBuffers)
        readRuns = .allocate(capacity: Self.maxReadRuns)
        spinning = configuration.receiveSpin > .zero
    }

    deinit { readRuns.deallocate() }

    /// Serves requests until the client disconnects, sends NBD_CMD_DISC or breaks the protocol.
    mutating func run() {
        // Passed down as a parameter: a borrowed reference costs no retain/release per request.
        let export = session.export
        let header = NBDRequest.headerSize
        while true {
            // Serve every complete request in the buffer.
            var needed = header
            var served = 0
            while received.unparsedCount >= header {
                guard let request = NBDRequest.parse(received.unparsed) else {
                    logger.info("bad request magic; closing")
                    _ = replies.flush(to: transport)
                    return
                }
                if request.hasPayload {
                    let length = Int(request.length)
                    if header + length <= received.capacity && length <= configuration.maxPayload {
                        guard received.unparsedCount >= header + length else {
                            needed = header + length
                            break
                        }
                        let payload = UnsafeRawBufferPointer(start: received.unparsed + header, count: length)
                        let backlogged = received.unparsedCount > header + length
                        serveWrite(request, on: export, payload: payload, backlogged: backlogged)
                        received.consume(header + length)
                    } else {
                        received.consume(header)
                        guard serveLargeWrite(request, on: export) else { return }
                    }
                } else {
                    received.consume(header)
                    if request.type == NBDCommand.disconnect.rawValue {
                        _ = replies.flush(to: transport)
                        logger.debug("client disconnected")
                        return
                    }
                    serve(request, on: export)
                }
                served += 1
            }
            received.makeRoom(forRequestOf: needed)
            guard replies.flush(to: transport) else { return }
            // Spin only after a batch of one request: deeper queues batch better by sleeping.
            guard let count = receiveBatch(spin: served <= 1 ? configuration.receiveSpin : .zero) else { return }
            received.didReceive(count)
        }
    }

    /// Receives what is there into the free end of the buffer; nil when the connection is over.
    ///
    /// Adaptive spin: a client in a request/reply ping-pong (queue depth 1) sends
    /// its next request a few microseconds after our reply. Catching it with
    /// non-blocking receives for up to `spin` saves the wake-up of an idle (virtual) CPU,
    /// which dominates latency there. The spin is only used while the client keeps
    /// coming back quickly: after a wait longer than `spinWorthwhile` the connection
    /// blocks straight away until a quick return shows it is busy again, so idle
    /// clients cost nothing.
    private mutating func receiveBatch(spin: Duration) -> Int? {
        let clock = ContinuousClock()
        let space = received.freeSpace
        if spinning && spin > .zero {
            let until = clock.now + spin
            repeat {
                for _ in 0..<8 {
                    switch transport.receiveAvailable(into: space) {
                    case .bytes(let n): return n
                    case .wouldBlock: continue
                    case .endOfStream, .failed: return nil
                    }
                }
            } while clock.now < until
        }
        let start = spin > .zero ? clock.now : nil
        guard case .bytes(let n) = transport.receive(into: space) else { return nil }
        if let start { spinning = clock.now - start < Self.spinWorthwhile }
        return n
    }

    /// A wait shorter than this marks the client as busy enough to spin for.
    static var spinWorthwhile: Duration { .microseconds(150) }
}

/// A run of a READ: `length` bytes that are all data or all hole.
struct ReadRun {
    var length: UInt64
    var isHole: Bool
}
