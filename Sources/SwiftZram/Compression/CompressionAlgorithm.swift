/// A compression algorithm a device can use, by zram's name for it.
public enum CompressionAlgorithm: String, CaseIterable, Sendable, CustomStringConvertible {
    /// lzo1x-1 from liblzo2 (the kernel's default is lzo-rle, which liblzo2 lacks).
    case lzo
    /// LZ4 fast mode; `level` is the acceleration (1 = best ratio).
    case lz4
    /// LZ4 high-compression mode, levels 1...12.
    case lz4hc
    /// Zstandard, levels 1...19.
    case zstd

    /// The algorithm a new device gets.
    public static let `default`: CompressionAlgorithm = .lz4

    public var description: String { rawValue }

    /// The levels `algorithm_params level=N` accepts.
    public var levels: ClosedRange<Int> {
        switch self {
        case .lzo: 1...1
        case .lz4: 1...65537
        case .lz4hc: 1...12
        case .zstd: 1...19
        }
    }

    /// The level used when none is given.
    public var defaultLevel: Int {
        switch self {
        case .lzo, .lz4, .zstd: 1
        case .lz4hc: 9
        }
    }

    /// Whether `algorithm_params dict=PATH` is supported.
    public var supportsDictionary: Bool { self == .lz4 || self == .zstd }
}

// A payload-free enum: copying it is a plain bit copy, so `CompressionStream` stays BitwiseCopyable.
extension CompressionAlgorithm: BitwiseCopyable {}
