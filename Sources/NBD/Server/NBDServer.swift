import Dispatch
import Logging
import Platform
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An NBD server: listeners on a Unix socket and/or TCP, one thread per connection.
///
/// ```swift
/// let exports = ExportRegistry(defaultExportName: "zram0", exports: [device])
/// let server = NBDServer(configuration: .init(unixSocketPath: "/run/znbd/nbd.sock"), exports: exports, logger: logger)
/// try server.start()
/// // ...
/// server.shutdown()
/// ```
public final class NBDServer: Sendable {
    public let configuration: NBDServerConfiguration
    /// The exports offered; add and remove at any time.
    public let exports: ExportRegistry
    let core: ServerCore
    private let listeners = Mutex<[Listener]>([])

    public init(configuration: NBDServerConfiguration, exports: ExportRegistry, logger: Logger) {
        self.configuration = configuration
        self.exports = exports
        core = ServerCore(configuration: configuration, exports: exports, logger: logger)
    }

    /// Loads the TLS credentials, binds the configured listeners and starts accepting.
    /// Throws when a credential file is bad or a listener cannot be bound; nothing is left listening then.
    public func start() throws(NBDServerError) {
        if configuration.tls.mode != .off {
            do {
                let credentials = try TLSCredentials(configuration.tls)
                for warning in credentials.warnings { core.logger.warning("\(warning)") }
                core.logger.info("TLS \(credentials.mode.rawValue) on TCP", metadata: ["credentials": "\(credentials.kinds)"])
                core.tlsCredentials.withLock { $0 = credentials }
            } catch {
                throw NBDServerError("TLS: \(error)")
            }
        }
        var bound: [Listener] = []
        do throws(NBDServerError) {
            if let path = configuration.unixSocketPath { bound.append(try Listener.unix(path: path)) }
            if let port = configuration.tcpPort { bound.append(try Listener.tcp(host: configuration.tcpHost, port: port)) }
            guard !bound.isEmpty else { throw NBDServerError("no listener configured") }
            for l in bound {
                let core = self.core
                let kind: ListenerKind = l.port != nil ? .tcp : .unix
                try l.start { fd in core.accept(fd, from: kind) }
                core.logger.info("listening", metadata: ["on": "\(l.description)"])
            }
        } catch {
            for l in bound { l.stop() }
            // Remove the socket file only if this server created it.
            if let path = configuration.unixSocketPath, bound.contains(where: { $0.port == nil }) { unlink(path) }
            throw error
        }
        listeners.withLock { $0 = bound }
    }

    /// The TCP port actually bound (useful with port 0), nil without TCP.
    public var boundTCPPort: Int? { listeners.withLock { ls in ls.lazy.compactMap(\.port).first } }

    /// Stops accepting, lets every connection finish the requests it has received,
    /// closes them and removes the Unix socket file. Waits up to `grace` for
    /// clients to drain before cutting them off.
    public func shutdown(grace: Duration = .seconds(5)) {
        let ls = listeners.withLock { ls in
            defer { ls = [] }
            return ls
        }
        for l in ls { l.stop() }
        if !ls.isEmpty, let path = configuration.unixSocketPath { unlink(path) }
        core.closeAll(grace: grace)
    }

    /// Connections in transmission on `export`.
    public func connectionCount(export: String) -> Int { core.connectionCount(export: export) }

    /// Bytes held in connections' reply buffers: at most `replyBufferSize` per connection
    /// in transmission, however much the clients have asked for and not read.
    public var replyBufferBytes: Int { core.replyBuffers.current }

    /// Every open connection, in handshake or transmission.
    public var connectionCount: Int { core.connectionCount(export: nil) }

    /// Cuts off every client of `export` (after it finishes what it has received); for hot-remove.
    public func disconnectClients(export: String) { core.disconnect(export: export) }
}

/// The listeners a server may have; each has its own connection budgets.
enum ListenerKind: Int, Sendable {
    case unix = 0
    case tcp = 1
}

/// What connection threads share: configuration, exports, buffer accounting, the connection table.
final class ServerCore: Sendable {
    let configuration: NBDServerConfiguration
    let exports: ExportRegistry
    let logger: Logger
    let replyBuffers = ReplyBufferAccounting()
    private let group = DispatchGroup()
    private let connectionThreads = ConnectionThreads(stackSize: 1 << 20)
    private let table = Mutex<Table>(Table())
    private let warnedIOFlusher = Atomic<Bool>(false)
    /// Loaded by `NBDServer.start()` when TLS is on; TCP connections use it.
    let tlsCredentials = Mutex<TLSCredentials?>(nil)

    struct Table {
        var nextID: UInt64 = 1
        var connections: [UInt64: Record] = [:]
        /// Per listener (indexed by `ListenerKind`): connections open and those still in the handshake.
        var open: [Int] = [0, 0]
        var handshaking: [Int] = [0, 0]
        var closing = false
    }

    struct Record {
        var fd: Int32
        var listener: ListenerKind
        /// The export once in transmission; nil during the handshake.
        var export: String?
    }

    init(configuration: NBDServerConfiguration, exports: ExportRegistry, logger: Logger) {
        self.configuration = configuration
        self.exports = exports
        self.logger = logger
    }

    /// Takes an accepted socket and gives it a thread, within its listener's budgets.
    func accept(_ fd: Int32, from listener: ListenerKind) {
        enum Admission { case admitted(UInt64), closing, full, handshakesFull }
        let admission: Admission = table.withLock { t in
            let l = listener.rawValue
            guard !t.closing else { return .closing }
            guard t.open[l] < configuration.maxConnectionsPerListener else { return .full }
            guard t.handshaking[l] < configuration.maxHandshakesPerListener else { return .handshakesFull }
            defer { t.nextID += 1 }
            t.connections[t.nextID] = Record(fd: fd, listener: listener)
            t.open[l] += 1
            t.handshaking[l] += 1
            return .admitted(t.nextID)
        }
        let id: UInt64
        switch admission {
        case .admitted(let admitted):
            id = admitted
        case .closing, .full, .handshakesFull:
            close(fd)
            let reason =
                switch admission {
                case .full: "at maxConnectionsPerListener"
                case .handshakesFull: "at maxHandshakesPerListener"
                default: "server closing"
                }
            logger.warning("connection refused", metadata: ["listener": "\(listener)", "reason": "\(reason)"])
            return
        }
        if listener == .tcp {
            SocketIO.setNoDelay(fd)
        } else if configuration.unixSendBufferSize > 0 {
            SocketIO.setSendBuffer(fd, bytes: configuration.unixSendBufferSize)
        }
        group.enter()
        do {
            try connectionThreads.run(name: "nbd-conn-\(id)") { [self] in
                if configuration.markIOThreadsAsIOFlushers { markAsIOFlusher() }
                let tls = listener == .tcp ? tlsCredentials.withLock { $0 } : nil
                Connection(socket: fd, id: id, core: self, tls: tls).run()
                finish(id)
            }
        } catch {
            logger.error("cannot start a connection thread: \(error)")
            finish(id)
        }
    }

    /// PR_SET_IO_FLUSHER on the calling connection thread; the first failure is logged.
    private func markAsIOFlusher() {
        do {
            try ProcessHardening.markCurrentThreadAsIOFlusher()
        } catch {
            if !warnedIOFlusher.exchange(true, ordering: .relaxed) { logger.warning("\(error)") }
        }
    }

    private func finish(_ id: UInt64) {
        table.withLock { t in
            guard let r = t.connections.removeValue(forKey: id) else { return }
            t.open[r.listener.rawValue] -= 1
            if r.export == nil { t.handshaking[r.listener.rawValue] -= 1 }
            close(r.fd)
        }
        group.leave()
    }

    /// The connection left the handshake and serves `export`.
    func attached(_ id: UInt64, export: String) {
        table.withLock { t in
            guard let r = t.connections[id], r.export == nil else { return }
            t.connections[id]?.export = export
            t.handshaking[r.listener.rawValue] -= 1
        }
    }

    /// Connections of one listener: open ones, and those of them still in the handshake.
    func load(of listener: ListenerKind) -> (open: Int, handshaking: Int) {
        table.withLock { t in (t.open[listener.rawValue], t.handshaking[listener.rawValue]) }
    }

    func connectionCount(export: String?) -> Int {
        table.withLock { t in
            guard let export else { return t.connections.count }
            return t.connections.values.count { $0.export == export }
        }
    }

    func disconnect(export: String) {
        table.withLock { t in
            for r in t.connections.values where r.export == export { shutdownSocket(r.fd, Int32(SHUT_RD)) }
        }
    }

    /// Ends reading on every connection (each finishes its received requests), then waits.
    func closeAll(grace: Duration) {
        table.withLock { t in
            t.closing = true
            for r in t.connections.values { shutdownSocket(r.fd, Int32(SHUT_RD)) }
        }
        let ms = Int(grace.components.seconds * 1000 + grace.components.attoseconds / 1_000_000_000_000_000)
        if group.wait(timeout: .now() + .milliseconds(ms)) == .timedOut {
            logger.warning("clients did not drain in time; cutting them off")
            table.withLock { t in
                for r in t.connections.values { shutdownSocket(r.fd, Int32(SHUT_RDWR)) }
            }
            group.wait()
        }
        connectionThreads.stop()
    }
}
