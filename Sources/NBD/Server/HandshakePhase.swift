import Logging
import Platform

/// What option haggling produced: everything transmission needs, complete.
struct EstablishedSession {
    /// The stream transmission continues on (the handshake may have replaced the plain socket).
    var transport: any ConnectionTransport
    /// The export and the options the client negotiated.
    var negotiated: NBDSession
    /// Bytes received after the option that entered transmission (pipelined requests).
    var leftover: [UInt8]
}

/// Runs the `Handshake` state machine over a transport, under one deadline from
/// accept to transmission (TLS handshake included), so a client that drips bytes
/// cannot hold a thread.
struct HandshakePhase {
    let core: ServerCore
    let logger: Logger
    /// Offered with NBD_OPT_STARTTLS when set (TCP with TLS on or required).
    var tls: TLSCredentials?

    /// Haggles until transmission; nil when the connection should close.
    /// After STARTTLS the rest of the haggling, and transmission, run over TLS.
    func run(over plain: PlainSocketTransport) -> EstablishedSession? {
        let exports = core.exports
        var machine = Handshake(
            maxOptionLength: core.configuration.maxOptionLength, maxPayload: core.configuration.maxPayload,
            tls: tls?.mode ?? .off, lookup: { exports.lookup($0) }, list: { exports.all }, open: { exports.open($0) })
        var transport: any ConnectionTransport = plain
        // Bounds every wait, sends included: a client that stops reading is dropped too.
        let deadline = Deadline(after: core.configuration.effectiveHandshakeTimeout)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16 << 10, alignment: 8)
        defer { buffer.deallocate() }
        while true {
            if !machine.output.isEmpty {
                guard send(machine.output, over: transport, before: deadline) else { return nil }
                machine.output.removeAll(keepingCapacity: true)
            }
            let timeout = deadline.pollTimeout
            guard timeout != 0, transport.waitUntilReadable(timeoutMilliseconds: timeout) else {
                logger.info("handshake timed out")
                return nil
            }
            let count: Int
            switch transport.receiveAvailable(into: buffer) {
            case .bytes(let n): count = n
            case .wouldBlock: continue
            case .endOfStream, .failed: return nil
            }
            switch machine.receive(UnsafeRawBufferPointer(rebasing: buffer[0..<count])) {
            case .needMore:
                continue
            case .startTLS:
                guard send(machine.output, over: transport, before: deadline), let tls else { return nil }
                machine.output.removeAll(keepingCapacity: true)
                guard let session = startTLS(on: plain.socket, tls, deadline: deadline) else { return nil }
                machine.tlsStarted()
                transport = TLSTransport(session: session)
            case .close(let reason):
                _ = send(machine.output, over: transport, before: deadline)
                logger.debug("handshake ended", metadata: ["reason": "\(reason)"])
                return nil
            case .transmission:
                guard send(machine.output, over: transport, before: deadline), let negotiated = machine.session else { return nil }
                return EstablishedSession(transport: transport, negotiated: negotiated, leftover: machine.leftover)
            }
        }
    }

    /// Sends option replies; false when the client is gone or has not taken them by `deadline`.
    private func send(_ output: [UInt8], over transport: any ConnectionTransport, before deadline: Deadline) -> Bool {
        guard transport.send(output, deadline: deadline) else {
            if deadline.hasPassed { logger.info("handshake timed out: the client does not read its replies") }
            return false
        }
        return true
    }

    /// The TLS handshake after STARTTLS's ACK went out in plaintext; nil when it failed.
    private func startTLS(on socket: Int32, _ credentials: TLSCredentials, deadline: Deadline) -> TLSSession? {
        do {
            let session = try TLSSession(socket: socket, credentials: credentials)
            try session.handshake(before: deadline)
            logger.info("TLS established", metadata: ["peer": "\(session.peerDescription)", "session": "\(session.parameters)"])
            return session
        } catch {
            logger.info("TLS handshake failed", metadata: ["error": "\(error)"])
            return nil
        }
    }
}
