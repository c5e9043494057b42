/// Wire constants of the NBD protocol (NetworkBlockDevice doc/proto.md).
/// All integers travel big-endian.
public enum NBDMagic {
    /// `NBDMAGIC`, the first 8 bytes of the greeting.
    public static let greeting: UInt64 = 0x4e42_444d_4147_4943
    /// `IHAVEOPT`: the second half of the greeting and the prefix of every option.
    public static let option: UInt64 = 0x4948_4156_454F_5054
    /// Prefix of every option reply.
    public static let optionReply: UInt64 = 0x0003_e889_0455_65a9
    /// Prefix of a transmission request.
    public static let request: UInt32 = 0x2560_9513
    /// Prefix of a simple reply.
    public static let simpleReply: UInt32 = 0x6744_6698
    /// Prefix of a structured reply chunk.
    public static let structuredReply: UInt32 = 0x668e_33ef
}

/// Handshake flags the server sends (16 bits).
public struct NBDHandshakeFlags: OptionSet, Sendable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// NBD_FLAG_FIXED_NEWSTYLE
    public static let fixedNewstyle = Self(rawValue: 1 << 0)
    /// NBD_FLAG_NO_ZEROES: the 124 zero bytes after EXPORT_NAME may be left out.
    public static let noZeroes = Self(rawValue: 1 << 1)
}

/// Flags the client sends back (32 bits).
public struct NBDClientFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// NBD_FLAG_C_FIXED_NEWSTYLE
    public static let fixedNewstyle = Self(rawValue: 1 << 0)
    /// NBD_FLAG_C_NO_ZEROES
    public static let noZeroes = Self(rawValue: 1 << 1)
}

/// Option requests (`NBD_OPT_*`).
public enum NBDOption: UInt32, Sendable {
    case exportName = 1
    case abort = 2
    case list = 3
    case peekExport = 4
    case startTLS = 5
    case info = 6
    case go = 7
    case structuredReply = 8
    case listMetaContext = 9
    case setMetaContext = 10
    case extendedHeaders = 11
}

/// Option reply types (`NBD_REP_*`); errors have bit 31 set.
public enum NBDOptionReply: UInt32, Sendable {
    case ack = 1
    case server = 2
    case info = 3
    case metaContext = 4
    case errUnsup = 0x8000_0001
    case errPolicy = 0x8000_0002
    case errInvalid = 0x8000_0003
    case errPlatform = 0x8000_0004
    case errTLSReqd = 0x8000_0005
    case errUnknown = 0x8000_0006
    case errShutdown = 0x8000_0007
    case errBlockSizeReqd = 0x8000_0008
    case errTooBig = 0x8000_0009
}

/// Information types inside `NBD_OPT_INFO`/`NBD_OPT_GO` (`NBD_INFO_*`).
public enum NBDInfoType: UInt16, Sendable {
    case export = 0
    case name = 1
    case description = 2
    case blockSize = 3
}

/// Per-export transmission flags (16 bits).
public struct NBDTransmissionFlags: OptionSet, Sendable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public static let hasFlags = Self(rawValue: 1 << 0)
    public static let readOnly = Self(rawValue: 1 << 1)
    public static let sendFlush = Self(rawValue: 1 << 2)
    public static let sendFUA = Self(rawValue: 1 << 3)
    public static let rotational = Self(rawValue: 1 << 4)
    public static let sendTrim = Self(rawValue: 1 << 5)
    public static let sendWriteZeroes = Self(rawValue: 1 << 6)
    /// Only with structured replies.
    public static let sendDF = Self(rawValue: 1 << 7)
    public static let canMultiConn = Self(rawValue: 1 << 8)
    public static let sendResize = Self(rawValue: 1 << 9)
    public static let sendCache = Self(rawValue: 1 << 10)
    /// Only with SEND_WRITE_ZEROES.
    public static let sendFastZero = Self(rawValue: 1 << 11)
}

/// Transmission commands (`NBD_CMD_*`).
public enum NBDCommand: UInt16, Sendable {
    case read = 0
    case write = 1
    case disconnect = 2
    case flush = 3
    case trim = 4
    case cache = 5
    case writeZeroes = 6
    case blockStatus = 7
}

/// Command flags (`NBD_CMD_FLAG_*`).
public struct NBDCommandFlags: OptionSet, Sendable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    /// Force unit access: reply only once the data is stored.
    public static let fua = Self(rawValue: 1 << 0)
    /// WRITE_ZEROES must not punch a hole.
    public static let noHole = Self(rawValue: 1 << 1)
    /// Don't fragment: a structured READ answers with one data chunk.
    public static let df = Self(rawValue: 1 << 2)
    /// BLOCK_STATUS answers with one extent.
    public static let reqOne = Self(rawValue: 1 << 3)
    /// WRITE_ZEROES must fail rather than be slow.
    public static let fastZero = Self(rawValue: 1 << 4)
}

/// Structured reply chunk types (`NBD_REPLY_TYPE_*`).
public enum NBDChunkType: UInt16, Sendable {
    case none = 0
    case offsetData = 1
    case offsetHole = 2
    case blockStatus = 5
    case error = 32769
    case errorOffset = 32770
}

/// Structured reply chunk flag: the last chunk of a reply.
public let nbdReplyFlagDone: UInt16 = 1

/// Error values on the wire (errno numbers as the protocol defines them).
public enum NBDError: UInt32, Sendable {
    case perm = 1
    case io = 5
    case nomem = 12
    case inval = 22
    case nospc = 28
    case overflow = 75
    case notsup = 95
    case shutdown = 108
}

/// The one meta context we serve.
public enum NBDMetaContext {
    public static let baseAllocation = "base:allocation"
    /// The id we hand out for `base:allocation`.
    public static let baseAllocationID: UInt32 = 1
}
