import Logging

/// One client connection, served start to end by its own thread: the handshake
/// phase settles a complete session, then a transmission loop serves it.
struct Connection {
    let socket: Int32
    let id: UInt64
    let core: ServerCore
    /// STARTTLS is offered when set (TCP connections with TLS configured).
    var tls: TLSCredentials?

    func run() {
        var logger = core.logger
        logger[metadataKey: "connection"] = "\(id)"
        let handshake = HandshakePhase(core: core, logger: logger, tls: tls)
        guard let established = handshake.run(over: PlainSocketTransport(socket: socket)) else { return }
        let export = established.negotiated.export
        core.attached(id, export: export.name)
        logger[metadataKey: "export"] = "\(export.name)"
        logger.debug("transmission", metadata: ["structured": "\(established.negotiated.structuredReplies)"])
        // The handshake attached the client (ExportRegistry.open); transmission ends its hold.
        defer { established.negotiated.attachment.release() }
        transmit(established, over: established.transport, logger: logger)
    }

    /// Opens the transport's concrete type, so the loop is specialised for it.
    private func transmit<Transport: ConnectionTransport>(
        _ established: EstablishedSession, over transport: Transport, logger: Logger
    ) {
        var loop = TransmissionLoop(
            transport: transport, session: established.negotiated, leftover: established.leftover,
            core: core, logger: logger)
        loop.run()
        transport.shutdown()
    }
}
