import Logging

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
/// accept to transmission, so a client that drips bytes cannot hold a thread.
struct HandshakePhase {
    let core: ServerCore
    let logger: Logger

    /// Haggles until transmission; nil when the connection should close.
    func run(over transport: any ConnectionTransport) -> EstablishedSession? {
        let exports = core.exports
        var machine = Handshake(
            maxOptionLength: core.configuration.maxOptionLength, maxPayload: core.configuration.maxPayload,
            lookup: { exports.lookup($0) }, list: { exports.all }, open: { exports.open($0) })
        let clock = ContinuousClock()
        let deadline = clock.now + core.configuration.effectiveHandshakeTimeout
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16 << 10, alignment: 8)
        defer { buffer.deallocate() }
        while true {
            if !machine.output.isEmpty {
                guard transport.send(machine.output) else { return nil }
                machine.output.removeAll(keepingCapacity: true)
            }
            let left = clock.now.duration(to: deadline)
            let milliseconds = left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000
            guard milliseconds > 0, transport.waitUntilReadable(timeoutMilliseconds: Int32(clamping: milliseconds)) else {
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
            case .close(let reason):
                _ = transport.send(machine.output)
                logger.debug("handshake ended", metadata: ["reason": "\(reason)"])
                return nil
            case .transmission:
                guard transport.send(machine.output), let negotiated = machine.session else { return nil }
                return EstablishedSession(transport: transport, negotiated: negotiated, leftover: machine.leftover)
            }
        }
    }
}
