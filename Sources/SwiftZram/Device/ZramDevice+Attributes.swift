#if canImport(Glibc)
import Glibc
#endif

/// zram's sysfs attributes, by their kernel names and in the kernel's text
/// formats: the control surface `znbd get` and `znbd set` expose.
extension ZramDevice {
    /// Attributes `readAttribute(_:)` knows.
    public static let readableAttributes = [
        "disksize", "initstate", "comp_algorithm", "mem_limit", "mem_used_max",
        "mm_stat", "io_stat", "bd_stat", "streams", "idle",
    ] + writebackReadableAttributes

    /// Attributes `writeAttribute(_:_:)` knows.
    public static let writableAttributes = [
        "disksize", "comp_algorithm", "algorithm_params", "mem_limit", "mem_used_max",
        "reset", "compact", "idle", "streams",
    ] + writebackWritableAttributes

    /// Reads an attribute as `cat /sys/block/zramN/ATTRIBUTE` would print it (with the newline).
    /// - Throws: `EINVAL` for an unknown or write-only attribute.
    public func readAttribute(_ name: String) throws(ZramError) -> String {
        if let text = readWritebackAttribute(name) { return text }
        switch name {
        case "disksize": return "\(diskSize)\n"
        case "initstate": return isInitialized ? "1\n" : "0\n"
        case "comp_algorithm":
            let current = algorithm
            return CompressionAlgorithm.allCases.map { $0 == current ? "[\($0)] " : "\($0) " }.joined() + "\n"
        case "mem_limit": return "\(memoryStatistics.memLimit)\n"
        case "mem_used_max": return "\(memoryStatistics.memUsedMax)\n"
        case "mm_stat": return memoryStatistics.kernelText
        case "io_stat": return ioStatistics.kernelText
        case "streams": return "\(streamCount)\n"
        case "idle": return "\(idlePages)\n"
        case _ where Self.writableAttributes.contains(name):
            throw .invalid("\(name) is write-only")
        default:
            throw .invalid("unknown attribute '\(name)'")
        }
    }

    /// Writes an attribute as `echo VALUE > /sys/block/zramN/ATTRIBUTE` would.
    /// Nothing changes when it throws.
    /// - Throws: `EBUSY` for what cannot change now, `EINVAL` for bad values or unknown attributes.
    public func writeAttribute(_ name: String, _ rawValue: String) throws(ZramError) {
        let value = String(rawValue.trimmingWhitespace())
        if try writeWritebackAttribute(name, value) { return }
        switch name {
        case "disksize":
            guard let bytes = memparse(value) else { throw .invalid("disksize '\(value)' is not a size") }
            try setDiskSize(bytes)
        case "comp_algorithm":
            guard let algorithm = CompressionAlgorithm(rawValue: value) else {
                throw .invalid("unknown algorithm '\(value)'; available: \(CompressionAlgorithm.allCases.map(\.rawValue).joined(separator: " "))")
            }
            if isInitialized { throw .busy("\(self.name) is initialised: reset it before changing comp_algorithm") }
            try setAlgorithm(algorithm)
        case "algorithm_params":
            try writeAlgorithmParameters(value)
        case "mem_limit":
            guard let bytes = memparse(value) else { throw .invalid("mem_limit '\(value)' is not a size") }
            try setMemoryLimit(bytes)
        case "mem_used_max":
            guard value == "0" else { throw .invalid("mem_used_max only accepts 0") }
            resetMemoryPeak()
        case "reset":
            guard let flag = UInt64(value) else { throw .invalid("reset takes a number") }
            guard flag != 0 else { throw .invalid("reset takes a non-zero number") }
            try reset()
        case "compact":
            guard isInitialized else { throw ZramError(.notInitialized, "\(self.name) has no disksize yet") }
            compact()
        case "idle":
            guard value == "all" else { throw .invalid("idle only accepts 'all'") }
            guard isInitialized else { throw ZramError(.notInitialized, "\(self.name) has no disksize yet") }
            markAllIdle()
        case "streams":
            guard let count = Int(value) else { throw .invalid("streams takes a number") }
            try setStreamCount(count)
        case _ where Self.readableAttributes.contains(name):
            throw .invalid("\(name) is read-only")
        default:
            throw .invalid("unknown attribute '\(name)'")
        }
    }

    /// Parses `level=N dict=PATH` (and `algo=NAME` naming the current algorithm, as the kernel allows).
    private func writeAlgorithmParameters(_ text: String) throws(ZramError) {
        var level: Int?
        var dictionaryPath: String?
        for token in text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }) {
            guard let equals = token.firstIndex(of: "=") else { throw .invalid("algorithm_params expects key=value, got '\(token)'") }
            let key = token[..<equals]
            let value = String(token[token.index(after: equals)...])
            switch key {
            case "level":
                guard let parsed = Int(value) else { throw .invalid("level '\(value)' is not a number") }
                level = parsed
            case "dict":
                guard !value.isEmpty else { throw .invalid("dict needs a path") }
                dictionaryPath = value
            case "algo":
                guard value == algorithm.rawValue else {
                    throw .invalid("algorithm_params for '\(value)' but the device uses \(algorithm)")
                }
            case "priority":
                guard value == "0" else { throw .invalid("only the primary algorithm (priority=0) exists") }
            default:
                throw .invalid("unknown algorithm parameter '\(key)'")
            }
        }
        var dictionary: [UInt8]?
        if let dictionaryPath {
            dictionary = try DictionaryFile.read(dictionaryPath)
        }
        try setAlgorithmParameters(level: level, dictionary: dictionary, dictionaryPath: dictionaryPath)
    }
}
