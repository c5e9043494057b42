/// What option haggling settled on; the connection enters transmission with it.
public struct NBDSession: Sendable {
    /// The client's hold on the export it chose; the connection releases it when transmission ends.
    public var attachment: ExportAttachment
    /// The export the client chose.
    public var export: any BlockExport { attachment.export }
    /// The client negotiated NBD_OPT_STRUCTURED_REPLY.
    public var structuredReplies: Bool
    /// The client selected `base:allocation` for this export with SET_META_CONTEXT.
    public var baseAllocation: Bool
    /// The client asked for NBD_FLAG_C_NO_ZEROES (no 124 zero bytes after EXPORT_NAME).
    public var noZeroes: Bool
    /// The flags sent to the client for this export.
    public var transmissionFlags: NBDTransmissionFlags
}

/// Fixed-newstyle option haggling as a state machine over a byte stream.
///
/// Feed it whatever the socket delivered with `receive(_:)`; send `output` after
/// each call. It never blocks and never allocates more than `maxOptionLength`
/// bytes for one option, so hostile input costs nothing.
///
/// TLS (NBD_OPT_STARTTLS): when the machine returns `.startTLS`, send `output`
/// in plaintext, run the TLS handshake, call `tlsStarted()` and feed it what
/// arrives over TLS from then on.
public struct Handshake {
    /// What happened after the bytes fed so far.
    public enum Step: Equatable {
        /// Waiting for more bytes.
        case needMore
        /// Option haggling is over; transmission starts with `leftover` already received.
        case transmission
        /// The client asked for TLS and `output` ends with the ACK: send it, run the
        /// TLS handshake, then call `tlsStarted()`.
        case startTLS
        /// Close the connection (after sending `output`).
        case close(String)
    }

    enum Phase: Equatable { case clientFlags, optionHeader, optionData(option: UInt32, length: Int), tlsHandshake, finished }

    /// Bytes to send to the client; the caller empties it.
    public var output: [UInt8] = []
    /// The negotiated session once `receive` returned `.transmission`.
    public private(set) var session: NBDSession?
    /// Bytes received after the option that entered transmission (pipelined requests).
    public var leftover: [UInt8] { Array(input[inputStart...]) }

    /// Options longer than this close the connection; nothing legitimate comes close.
    public let maxOptionLength: Int
    /// The largest READ/WRITE payload the server accepts, announced as the maximum block size.
    public let maxPayload: Int
    /// Whether STARTTLS is offered, and whether it must come first.
    public let tls: TLSConfiguration.Mode
    /// The connection runs over TLS (STARTTLS succeeded).
    public private(set) var isTLSActive = false
    private let lookup: (String) -> (any BlockExport)?
    private let list: () -> [any BlockExport]
    private let open: (String) -> ExportAttachment?

    private var phase = Phase.clientFlags
    private var input: [UInt8] = []
    private var inputStart = 0
    private var noZeroes = false
    private var structured = false
    /// The export name SET_META_CONTEXT selected `base:allocation` for.
    private var metaContextExport: String?

    /// - Parameters:
    ///   - tls: `.off` answers STARTTLS with ERR_POLICY; `.require` answers every
    ///     option before it except ABORT with ERR_TLS_REQD.
    ///   - lookup: resolves an export name (empty means the default export).
    ///   - list: every export, for NBD_OPT_LIST.
    ///   - open: looks up and attaches in one step, for the option that enters transmission
    ///     (`ExportRegistry.open`); without it, `lookup` with an attachment nothing counts.
    public init(
        maxOptionLength: Int = 64 * 1024, maxPayload: Int = 64 << 20, tls: TLSConfiguration.Mode = .off,
        lookup: @escaping (String) -> (any BlockExport)?, list: @escaping () -> [any BlockExport],
        open: ((String) -> ExportAttachment?)? = nil
    ) {
        self.maxOptionLength = maxOptionLength
        self.maxPayload = maxPayload
        self.tls = tls
        self.lookup = lookup
        self.list = list
        self.open = open ?? { name in lookup(name).map { ExportAttachment(export: $0, registry: nil) } }
        output.appendBE(NBDMagic.greeting)
        output.appendBE(NBDMagic.option)
        output.appendBE(NBDHandshakeFlags([.fixedNewstyle, .noZeroes]).rawValue)
    }

    /// The transmission flags for an export.
    public static func transmissionFlags(structured: Bool) -> NBDTransmissionFlags {
        var f: NBDTransmissionFlags = [
            .hasFlags, .sendFlush, .sendFUA, .sendTrim, .sendWriteZeroes, .sendFastZero, .sendCache, .canMultiConn,
        ]
        if structured { f.insert(.sendDF) }
        return f
    }

    /// The TLS handshake after `.startTLS` succeeded: option haggling continues over TLS.
    public mutating func tlsStarted() {
        precondition(phase == .tlsHandshake, "tlsStarted() without a pending STARTTLS")
        isTLSActive = true
        input.removeAll()
        inputStart = 0
        phase = .optionHeader
    }

    /// Consumes received bytes and advances as far as they allow.
    public mutating func receive(_ bytes: UnsafeRawBufferPointer) -> Step {
        input.append(contentsOf: bytes)
        return advance()
    }

    /// Consumes received bytes (convenience for tests).
    public mutating func receive(_ bytes: [UInt8]) -> Step {
        bytes.withUnsafeBytes { receive($0) }
    }

    private var isFinished: Bool {
        if case .finished = phase { return true }
        return false
    }

    private var available: Int { input.count - inputStart }

    private mutating func take(_ n: Int) -> ArraySlice<UInt8> {
        defer { inputStart += n }
        return input[inputStart..<inputStart + n]
    }

    private mutating func advance() -> Step {
        defer {
            // Drop consumed bytes now and then so the buffer stays small.
            if inputStart > 4096 && !isFinished {
                input.removeFirst(inputStart)
                inputStart = 0
            }
        }
        while true {
            switch phase {
            case .finished:
                return .transmission
            case .tlsHandshake:
                return .close("plaintext bytes after STARTTLS")
            case .clientFlags:
                guard available >= 4 else { return .needMore }
                let flags = Array(take(4)).beU32(0)
                let known = NBDClientFlags([.fixedNewstyle, .noZeroes]).rawValue
                guard flags & ~known == 0 else { return .close("unknown client flags \(flags)") }
                noZeroes = flags & NBDClientFlags.noZeroes.rawValue != 0
                phase = .optionHeader
            case .optionHeader:
                guard available >= 16 else { return .needMore }
                let h = Array(take(16))
                guard h.beU64(0) == NBDMagic.option else { return .close("bad option magic") }
                let option = h.beU32(8)
                let length = h.beU32(12)
                guard length <= maxOptionLength else { return .close("option \(option) length \(length) too large") }
                phase = .optionData(option: option, length: Int(length))
            case .optionData(let option, let length):
                guard available >= length else { return .needMore }
                let data = Array(take(length))
                phase = .optionHeader
                if let step = handle(option: option, data: data) { return step }
            }
        }
    }

    // MARK: - Options

    private mutating func reply(_ option: UInt32, _ type: NBDOptionReply, _ data: [UInt8] = []) {
        output.appendBE(NBDMagic.optionReply)
        output.appendBE(option)
        output.appendBE(type.rawValue)
        output.appendBE(UInt32(data.count))
        output.append(contentsOf: data)
    }

    private mutating func error(_ option: UInt32, _ type: NBDOptionReply, _ message: String) {
        reply(option, type, Array(message.utf8))
    }

    /// Handles one complete option; returns a step when haggling ends.
    private mutating func handle(option raw: UInt32, data: [UInt8]) -> Step? {
        if tls == .require && !isTLSActive && raw != NBDOption.abort.rawValue && raw != NBDOption.startTLS.rawValue {
            // EXPORT_NAME has no error reply: the only refusal is to hang up.
            if raw == NBDOption.exportName.rawValue { return .close("EXPORT_NAME before STARTTLS while TLS is required") }
            error(raw, .errTLSReqd, "TLS is required: send NBD_OPT_STARTTLS first")
            return nil
        }
        guard let option = NBDOption(rawValue: raw) else {
            error(raw, .errUnsup, "unknown option")
            return nil
        }
        switch option {
        case .exportName:
            // Attached before the size is read, so a reset or hot-remove is either refused or seen.
            guard let attachment = open(String(decoding: data, as: UTF8.self)) else {
                return .close("unknown export")
            }
            let flags = Self.transmissionFlags(structured: structured)
            output.appendBE(attachment.export.size)
            output.appendBE(flags.rawValue)
            if !noZeroes { output.append(contentsOf: repeatElement(0, count: 124)) }
            return enter(attachment, flags)
        case .abort:
            reply(raw, .ack)
            return .close("client aborted")
        case .list:
            guard data.isEmpty else {
                error(raw, .errInvalid, "LIST takes no data")
                return nil
            }
            for export in list() {
                var d: [UInt8] = []
                let name = Array(export.name.utf8)
                d.appendBE(UInt32(name.count))
                d.append(contentsOf: name)
                d.append(contentsOf: Array(export.exportDescription.utf8))
                reply(raw, .server, d)
            }
            reply(raw, .ack)
        case .startTLS:
            return startTLS(raw, data)
        case .info, .go:
            return infoOrGo(raw, go: option == .go, data)
        case .structuredReply:
            guard data.isEmpty else {
                error(raw, .errInvalid, "STRUCTURED_REPLY takes no data")
                return nil
            }
            structured = true
            reply(raw, .ack)
        case .listMetaContext, .setMetaContext:
            metaContext(raw, set: option == .setMetaContext, data)
        case .peekExport, .extendedHeaders:
            error(raw, .errUnsup, "unsupported option")
        }
        return nil
    }

    private mutating func startTLS(_ raw: UInt32, _ data: [UInt8]) -> Step? {
        guard tls != .off else {
            error(raw, .errPolicy, "TLS is not offered")
            return nil
        }
        guard data.isEmpty else {
            error(raw, .errInvalid, "STARTTLS takes no data")
            return nil
        }
        guard !isTLSActive else {
            error(raw, .errInvalid, "TLS is already active")
            return nil
        }
        // The client must wait for the ACK; anything pipelined would be plaintext
        // injected into the TLS session's beginning.
        guard available == 0 else { return .close("bytes sent after STARTTLS before its reply") }
        reply(raw, .ack)
        // What was negotiated in plaintext does not carry over (the client renegotiates).
        structured = false
        metaContextExport = nil
        phase = .tlsHandshake
        return .startTLS
    }

    private mutating func enter(_ attachment: ExportAttachment, _ flags: NBDTransmissionFlags) -> Step {
        session = NBDSession(
            attachment: attachment, structuredReplies: structured,
            baseAllocation: structured && metaContextExport == attachment.export.name, noZeroes: noZeroes,
            transmissionFlags: flags)
        phase = .finished
        return .transmission
    }

    private mutating func infoOrGo(_ raw: UInt32, go: Bool, _ data: [UInt8]) -> Step? {
        // u32 name length, name, u16 count, count × u16 info type.
        guard data.count >= 6 else {
            error(raw, .errInvalid, "short request")
            return nil
        }
        let nameLength = Int(data.beU32(0))
        guard nameLength <= data.count - 6 else {
            error(raw, .errInvalid, "name length exceeds the option")
            return nil
        }
        let count = Int(data.beU16(4 + nameLength))
        guard data.count == 6 + nameLength + 2 * count else {
            error(raw, .errInvalid, "information request count does not match the option length")
            return nil
        }
        let name = String(decoding: data[4..<4 + nameLength], as: UTF8.self)
        // GO attaches before the size is read, so a reset or hot-remove is either refused or seen.
        let attachment = go ? open(name) : nil
        guard let export = go ? attachment?.export : lookup(name) else {
            error(raw, .errUnknown, "unknown export")
            return nil
        }
        let flags = Self.transmissionFlags(structured: structured)
        var info: [UInt8] = []
        info.appendBE(NBDInfoType.export.rawValue)
        info.appendBE(export.size)
        info.appendBE(flags.rawValue)
        reply(raw, .info, info)
        var sent = Set<UInt16>()
        for i in 0..<count {
            let type = data.beU16(6 + nameLength + 2 * i)
            guard sent.insert(type).inserted else { continue }
            var d: [UInt8] = []
            switch NBDInfoType(rawValue: type) {
            case .name:
                d.appendBE(type)
                d.append(contentsOf: Array(export.name.utf8))
            case .description:
                d.appendBE(type)
                d.append(contentsOf: Array(export.exportDescription.utf8))
            case .blockSize:
                d.appendBE(type)
                d.appendBE(UInt32(1))
                d.appendBE(UInt32(4096))
                d.appendBE(UInt32(min(maxPayload, 32 << 20)))
            case .export, nil:
                continue
            }
            reply(raw, .info, d)
        }
        reply(raw, .ack)
        if let attachment { return enter(attachment, flags) }
        return nil
    }

    private mutating func metaContext(_ raw: UInt32, set: Bool, _ data: [UInt8]) {
        if set && !structured {
            error(raw, .errInvalid, "SET_META_CONTEXT needs structured replies")
            return
        }
        // u32 export name length, name, u32 query count, count × (u32 length, query).
        guard data.count >= 8, Int(data.beU32(0)) <= data.count - 8 else {
            error(raw, .errInvalid, "malformed meta context request")
            return
        }
        let nameLength = Int(data.beU32(0))
        let name = String(decoding: data[4..<4 + nameLength], as: UTF8.self)
        let count = Int(data.beU32(4 + nameLength))
        var queries: [String] = []
        var at = 8 + nameLength
        for _ in 0..<min(count, data.count) {
            guard data.count - at >= 4, Int(data.beU32(at)) <= data.count - at - 4 else {
                error(raw, .errInvalid, "malformed meta context query")
                return
            }
            let length = Int(data.beU32(at))
            queries.append(String(decoding: data[at + 4..<at + 4 + length], as: UTF8.self))
            at += 4 + length
        }
        guard queries.count == count, at == data.count else {
            error(raw, .errInvalid, "meta context query count does not match the option length")
            return
        }
        guard let export = lookup(name) else {
            error(raw, .errUnknown, "unknown export")
            return
        }
        let matches: Bool
        if set {
            matches = queries.contains(NBDMetaContext.baseAllocation)
        } else {
            matches = queries.isEmpty || queries.contains { $0 == "base:" || $0 == NBDMetaContext.baseAllocation }
        }
        if matches {
            var d: [UInt8] = []
            d.appendBE(NBDMetaContext.baseAllocationID)
            d.append(contentsOf: Array(NBDMetaContext.baseAllocation.utf8))
            reply(raw, .metaContext, d)
        }
        if set { metaContextExport = matches ? export.name : nil }
        reply(raw, .ack)
    }
}
