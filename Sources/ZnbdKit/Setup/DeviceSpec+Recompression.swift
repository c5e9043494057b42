import SwiftZram

/// A recompression algorithm from a config's `compression-algorithm` list, with its level.
public struct RecompressionChoice: Sendable, Equatable {
    public var algorithm: CompressionAlgorithm
    public var level: Int?

    public init(algorithm: CompressionAlgorithm, level: Int? = nil) {
        self.algorithm = algorithm
        self.level = level
    }
}

extension DeviceSpec {
    /// The attribute writes that configure recompression, before disksize: each priority's
    /// `recomp_algorithm`, then its level through `algorithm_params priority=N`.
    ///
    /// Never a write to `recompress`: that starts a recompression, and zram-generator#215
    /// sent the parameters there.
    public var recompressionWrites: [(attribute: String, value: String)] {
        recompression.enumerated().flatMap { offset, choice in
            let priority = offset + 1
            var writes = [("recomp_algorithm", "algo=\(choice.algorithm) priority=\(priority)")]
            if let level = choice.level { writes.append(("algorithm_params", "priority=\(priority) level=\(level)")) }
            return writes
        }
    }
}
