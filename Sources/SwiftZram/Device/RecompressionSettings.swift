/// `recomp_algorithm` and the `algorithm_params` of priorities 1...3: what a device
/// recompresses with once initialised.
struct RecompressionSettings {
    /// One priority's algorithm and parameters.
    struct Entry {
        var algorithm: CompressionAlgorithm
        var level: Int?
        var dictionary: [UInt8]?
        var dictionaryPath: String?
    }

    /// Priorities 1, 2, 3.
    var entries: [Entry?] = [nil, nil, nil]

    subscript(priority: Int) -> Entry? {
        get { entries[priority - 1] }
        set { entries[priority - 1] = newValue }
    }

    /// The priority (1...3) whose algorithm is `algorithm`, lowest first.
    func priority(of algorithm: CompressionAlgorithm) -> Int? {
        (1...RecompressorPools.highestPriority).first { self[$0]?.algorithm == algorithm }
    }

    /// The validated compression parameters of each priority.
    func parameters() throws(ZramError) -> [CompressionParameters?] {
        var result: [CompressionParameters?] = []
        for entry in entries {
            guard let entry else {
                result.append(nil)
                continue
            }
            result.append(try CompressionParameters(algorithm: entry.algorithm, level: entry.level, dictionary: entry.dictionary))
        }
        return result
    }
}
