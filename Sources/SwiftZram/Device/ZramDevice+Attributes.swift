#if canImport(Glibc)
import Glibc
#endif

/// zram's sysfs attributes, by their kernel names and in the kernel's text
/// formats: the control surface `znbd get` and `znbd set` expose.
extension ZramDevice {
    /// Attributes `readAttribute(_:)` knows.
    public static let readableAttributes = [
        "disksize", "initstate", "comp_algorithm", "mem_limit", "mem_used_max",
        "mm_stat", "io_stat", "bd_stat", "streams", "idle", "recomp_algorithm",
    ] + writebackReadableAttributes + tieringReadableAttributes

    /// Attributes `writeAttribute(_:_:)` knows.
    public static let writableAttributes = [
        "disksize", "comp_algorithm", "algorithm_params", "mem_limit", "mem_used_max",
        "reset", "compact", "idle", "streams", "recomp_algorithm", "recompress",
    ] + writebackWritableAttributes + tieringWritableAttributes

    /// Reads an attribute as `cat /sys/block/zramN/ATTRIBUTE` would print it (with the newline).
    /// - Throws: `EINVAL` for an unknown or write-only attribute.
    public func readAttribute(_ name: String) throws(ZramError) -> String {
        if let text = readWritebackAttribute(name) ?? readTieringAttribute(name) { return text }
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
        case "recomp_algorithm": return recompressionAlgorithmText
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
        if try writeTieringAttribute(name, value) { return }
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
            // A u16, as the kernel parses it.
            guard let flag = UInt16(value) else { throw .invalid("reset takes a number from 1 to 65535") }
            guard flag != 0 else { throw .invalid("reset takes a non-zero number") }
            try reset()
        case "compact":
            // EINVAL, as the kernel's compact and idle answer before disksize (ENXIO is for I/O).
            guard isInitialized else { throw .invalid("\(self.name) has no disksize yet") }
            compact()
        case "idle":
            let selection = try IdleSelection(parsing: value)
            guard isInitialized else { throw .invalid("\(self.name) has no disksize yet") }
            markIdle(selection)
        case "recomp_algorithm":
            try writeRecompressionAlgorithm(value)
        case "recompress":
            try recompress(RecompressionRequest(parsing: value))
        case "streams":
            guard let count = Int(value) else { throw .invalid("streams takes a number") }
            try setStreamCount(count)
        case _ where Self.readableAttributes.contains(name):
            throw .invalid("\(name) is read-only")
        default:
            throw .invalid("unknown attribute '\(name)'")
        }
    }

    /// Parses `level=N dict=PATH`, for the primary algorithm or the one `priority=N` or
    /// `algo=NAME` selects (algo wins, as in the kernel; it looks the primary up first).
    private func writeAlgorithmParameters(_ text: String) throws(ZramError) {
        var level: Int?
        var dictionaryPath: String?
        var priority = 0
        var named: CompressionAlgorithm?
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
                guard let parsed = CompressionAlgorithm(named: value) else { throw .invalid("unknown algorithm '\(value)'") }
                named = parsed
            case "priority":
                guard let parsed = Int(value), (0...RecompressorPools.highestPriority).contains(parsed) else {
                    throw .invalid("priority '\(value)' is not 0...\(RecompressorPools.highestPriority)")
                }
                priority = parsed
            default:
                throw .invalid("unknown algorithm parameter '\(key)'")
            }
        }
        var dictionary: [UInt8]?
        if let dictionaryPath {
            dictionary = try DictionaryFile.read(dictionaryPath)
        }
        if let named {
            guard let found = named == algorithm ? 0 : lifecycle.withShared({ settings.recompression.priority(of: named) }) else {
                throw .invalid("algorithm_params for '\(named)', which is neither comp_algorithm nor a recomp_algorithm")
            }
            priority = found
        }
        if priority == 0 {
            try setAlgorithmParameters(level: level, dictionary: dictionary, dictionaryPath: dictionaryPath)
        } else {
            try setRecompressionParameters(priority: priority, level: level, dictionary: dictionary, dictionaryPath: dictionaryPath)
        }
    }
}
