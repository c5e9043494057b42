import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One client connection, served start to end by its own thread.
///
/// The handshake runs under a deadline; transmission then reads requests in
/// batches, serves them in order on this thread and sends the replies of a
/// batch together (see README-design.md for why).
final class Connection {
    let fd: Int32
    let id: UInt64
    let core: ServerCore
    var logger: Logger

    // Transmission state, set up after the handshake.
    var session: NBDSession!
    var export: (any BlockExport)!
    /// Receive buffer: unparsed bytes are `rbuf[rstart..<rend]`.
    var rbuf: UnsafeMutableRawPointer!
    var rcap = 0
    var rstart = 0
    var rend = 0
    var out: ReplyQueue!
    /// Scratch for READ hole detection: (length, isHole) runs.
    var runs: UnsafeMutablePointer<(UInt64, Bool)>!
    static let maxRuns = 64

    init(fd: Int32, id: UInt64, core: ServerCore) {
        self.fd = fd
        self.id = id
        self.core = core
        logger = core.logger
        logger[metadataKey: "connection"] = "\(id)"
    }

    deinit {
        rbuf?.deallocate()
        runs?.deallocate()
    }

    func run() {
        guard let leftover = handshake() else { return }
        let export = session.export
        self.export = export
        core.attached(id, export: export.name)
        logger[metadataKey: "export"] = "\(export.name)"
        logger.debug("transmission", metadata: ["structured": "\(session.structuredReplies)"])
        export.clientAttached()
        defer { export.clientDetached() }
        transmit(leftover: leftover)
    }

    /// Runs option haggling; returns the bytes received past it, or nil to close.
    private func handshake() -> [UInt8]? {
        let exports = core.exports
        var hs = Handshake(
            maxOptionLength: core.configuration.maxOptionLength, maxPayload: core.configuration.maxPayload,
            lookup: { exports.lookup($0) }, list: { exports.all })
        let clock = ContinuousClock()
        let deadline = clock.now + core.configuration.effectiveHandshakeTimeout
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16 << 10, alignment: 8)
        defer { buffer.deallocate() }
        while true {
            if !hs.output.isEmpty {
                guard SocketIO.sendAll(fd, hs.output) else { return nil }
                hs.output.removeAll(keepingCapacity: true)
            }
            let left = clock.now.duration(to: deadline)
            let ms = left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000
            guard ms > 0, SocketIO.waitReadable(fd, timeoutMilliseconds: Int32(clamping: ms)) else {
                logger.info("handshake timed out")
                return nil
            }
            let n = recv(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT))
            if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            guard n > 0 else { return nil }
            let step = hs.receive(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            switch step {
            case .needMore:
                continue
            case .close(let reason):
                if !hs.output.isEmpty { _ = SocketIO.sendAll(fd, hs.output) }
                logger.debug("handshake ended", metadata: ["reason": "\(reason)"])
                return nil
            case .startTLS:
                // Not reached: this handshake offers no TLS (tls: .off).
                return nil
            case .transmission:
                guard SocketIO.sendAll(fd, hs.output) else { return nil }
                session = hs.session
                return hs.leftover
            }
        }
    }
}
