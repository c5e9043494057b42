import SwiftZram

/// What one device should be: from the command line or a `[zramN]` config section.
public struct DeviceSpec: Sendable, Equatable {
    public var size: UInt64
    public var algorithm: CompressionAlgorithm?
    public var level: Int?
    public var memLimit: UInt64?
    public var swapPriority: Int = 100
    public var fsType: String = "swap"
    public var mountPoint: String?
    /// Extra `swapon -o` or `mount -o` options.
    public var options: String?
    /// Recompression algorithms for priorities 1, 2, 3 (the rest of `compression-algorithm`).
    public var recompression: [RecompressionChoice] = []
    /// `backing_dev` (a path or an NBD URI), set before disksize.
    public var writebackDevice: String?
    /// Automatic tiering (`tiering_enable`), and its `tiering_high_watermark` in bytes.
    public var tiering = false
    public var tieringHighWatermark: UInt64?

    public init(
        size: UInt64, algorithm: CompressionAlgorithm? = nil, level: Int? = nil, memLimit: UInt64? = nil,
        swapPriority: Int = 100, fsType: String = "swap", mountPoint: String? = nil, options: String? = nil,
        recompression: [RecompressionChoice] = [], writebackDevice: String? = nil
    ) {
        self.size = size
        self.algorithm = algorithm
        self.level = level
        self.memLimit = memLimit
        self.swapPriority = swapPriority
        self.fsType = fsType
        self.mountPoint = mountPoint
        self.options = options
        self.recompression = recompression
        self.writebackDevice = writebackDevice
    }
}
