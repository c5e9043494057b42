/// How an `NBDServer` listens and how much it lets each client use.
public struct NBDServerConfiguration: Sendable {
    /// Path of the Unix socket to listen on (mode 0600, parent directory created); nil for none.
    public var unixSocketPath: String?
    /// TCP address to listen on; only used when `tcpPort` is set.
    public var tcpHost: String
    /// TCP port; nil means no TCP listener, 0 picks an ephemeral port (see `NBDServer.boundTCPPort`).
    public var tcpPort: Int?
    /// TLS on the TCP listener (NBD_OPT_STARTTLS); the Unix socket stays plaintext.
    /// Its files are loaded by `NBDServer.start()`, which fails on a bad one.
    public var tls: TLSConfiguration = .off

    /// How long a client may take from connecting to entering transmission.
    /// Values under 30 s are raised to 30 s: slow boots and serial bridges connect long before they speak.
    public var handshakeTimeout: Duration {
        get { _handshakeTimeout }
        set { _handshakeTimeout = max(newValue, Self.minimumHandshakeTimeout) }
    }
    public static let minimumHandshakeTimeout: Duration = .seconds(30)
    private var _handshakeTimeout: Duration = .seconds(60)
    /// Test-only: bypasses the 30 s minimum.
    var handshakeTimeoutOverride: Duration?
    var effectiveHandshakeTimeout: Duration { handshakeTimeoutOverride ?? _handshakeTimeout }

    /// The largest READ/WRITE payload served. Larger writes are consumed and answered with EOVERFLOW.
    public var maxPayload: Int = 64 << 20
    /// Longest option accepted during the handshake; longer ones close the connection.
    public var maxOptionLength: Int = 64 << 10
    /// Size of each connection's receive buffer. Requests are parsed where they land;
    /// a WRITE payload that does not fit streams through it and is written a buffer at a time.
    public var connectionBufferSize: Int = 256 << 10
    /// Size of each connection's reply buffer: the most reply bytes a connection holds
    /// unsent. A larger READ is read and sent a buffer at a time, and a connection whose
    /// client does not take its replies stops reading requests until it does
    /// (backpressure, not errors). A connection holds its two buffers and nothing more.
    /// 1 MiB and a page: a 1 MiB READ goes out with its header in one send, which wakes
    /// the client once instead of once per 256 KiB piece.
    public var replyBufferSize: Int = (1 << 20) + 4096
    /// SO_SNDBUF of Unix-socket connections (TCP sizes its own, up to tcp_wmem's 4 MiB):
    /// room for a whole large READ reply in the kernel, so the connection decompresses
    /// the next request while the client takes this one. 0 keeps the system default.
    public var unixSendBufferSize: Int = 1 << 20
    /// Connections one listener keeps open, in handshake or transmission; new ones beyond it
    /// are closed right after accept. Each listener counts its own, so clients of one (TCP)
    /// cannot lock out those of another (the Unix socket). Established connections are never
    /// timed out, however long they stay idle (a swap device's connection idles for hours).
    public var maxConnectionsPerListener: Int = 1024
    /// Connections one listener lets sit in the handshake at once; new ones beyond it are
    /// closed right after accept, so silent clients cannot use up the connection budget.
    /// Connections in transmission are unaffected; `handshakeTimeout` ends silent ones.
    public var maxHandshakesPerListener: Int = 64
    /// Structured READs at least this long report unwritten ranges as holes (unless DF).
    public var holeDetectionMinimum: Int = 64 << 10
    /// How long a busy connection's thread keeps polling (non-blocking receives)
    /// for the next request before it sleeps. Catching the request awake avoids
    /// waking an idle CPU, which dominates latency at queue depth 1; the spin is
    /// used only after single-request batches, and switches itself off for
    /// clients that pause longer than 150 µs. `.zero` disables it.
    public var receiveSpin: Duration = .microseconds(50)
    /// Calls `prctl(PR_SET_IO_FLUSHER, 1)` on every connection thread (same-host swap).
    public var markIOThreadsAsIOFlushers: Bool = false

    public init(unixSocketPath: String? = nil, tcpHost: String = "127.0.0.1", tcpPort: Int? = nil) {
        self.unixSocketPath = unixSocketPath
        self.tcpHost = tcpHost
        self.tcpPort = tcpPort
    }
}
