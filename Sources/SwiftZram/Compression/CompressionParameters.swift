/// The algorithm, level and optional dictionary a device compresses with
/// (zram's `comp_algorithm` plus `algorithm_params level=N dict=PATH`).
public struct CompressionParameters: Sendable, Hashable {
    public var algorithm: CompressionAlgorithm
    /// The compression level, or the acceleration for ``CompressionAlgorithm/lz4``;
    /// within `algorithm.levels`.
    public var level: Int
    /// Dictionary bytes for lz4 and zstd (zram's `dict=PATH`); `nil` for none.
    public var dictionary: [UInt8]?

    /// Validates the parameters.
    /// - Parameters:
    ///   - algorithm: The algorithm.
    ///   - level: The level; `nil` picks `algorithm.defaultLevel`.
    ///   - dictionary: Dictionary bytes; only for algorithms whose `supportsDictionary` is true.
    /// - Throws: `ZramError(.invalidArgument, ...)` for a level out of range, an empty
    ///   dictionary, or a dictionary on an algorithm without support.
    public init(
        algorithm: CompressionAlgorithm = .default, level: Int? = nil, dictionary: [UInt8]? = nil
    ) throws(ZramError) {
        let level = level ?? algorithm.defaultLevel
        guard algorithm.levels.contains(level) else {
            throw .invalid(
                "level \(level) is out of range for \(algorithm) "
                    + "(\(algorithm.levels.lowerBound)...\(algorithm.levels.upperBound))")
        }
        if let dictionary {
            guard algorithm.supportsDictionary else {
                throw .invalid("\(algorithm) does not support a dictionary")
            }
            guard !dictionary.isEmpty, dictionary.count <= Int(Int32.max) else {
                throw .invalid("a dictionary must hold 1 to \(Int32.max) bytes, not \(dictionary.count)")
            }
        }
        self.algorithm = algorithm
        self.level = level
        self.dictionary = dictionary
    }
}
