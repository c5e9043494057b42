#if canImport(Glibc)
import Glibc
#endif

/// zram's recompression: `recomp_algorithm` chooses up to three secondary algorithms
/// (priorities 1...3), `algorithm_params priority=N` sets their parameters, and
/// `recompress` recompresses chosen pages with them (zram_drv.c's recompress_store).
extension ZramDevice {
    // MARK: Configuration

    /// Recompression priorities a device has (1...3), as zram's ZRAM_MAX_COMPS - 1.
    public static let recompressionPriorities = RecompressorPools.highestPriority

    /// Sets the algorithm of recompression priority `priority` (1...3), resetting its parameters.
    /// - Throws: `EBUSY` once initialised, `EINVAL` for a priority outside 1...3.
    public func setRecompressionAlgorithm(_ algorithm: CompressionAlgorithm, priority: Int) throws(ZramError) {
        guard (1...RecompressorPools.highestPriority).contains(priority) else {
            throw .invalid("recomp_algorithm priority must be 1...\(RecompressorPools.highestPriority), not \(priority)")
        }
        try lifecycle.withExclusive { () throws(ZramError) in
            guard !isInitializedLocked else {
                throw .busy("\(name) is initialised: reset it before changing recomp_algorithm")
            }
            settings.recompression[priority] = .init(algorithm: algorithm)
        }
    }

    /// Sets the level and dictionary of recompression priority `priority` (algorithm_params priority=N).
    /// - Throws: `EBUSY` once initialised, `EINVAL` if the priority has no algorithm or rejects them.
    public func setRecompressionParameters(
        priority: Int, level: Int?, dictionary: [UInt8]?, dictionaryPath: String? = nil
    ) throws(ZramError) {
        try lifecycle.withExclusive { () throws(ZramError) in
            guard !isInitializedLocked else {
                throw .busy("\(name) is initialised: reset it before changing algorithm_params")
            }
            guard (1...RecompressorPools.highestPriority).contains(priority), var entry = settings.recompression[priority] else {
                throw .invalid("algorithm_params: priority \(priority) has no algorithm (set recomp_algorithm first)")
            }
            _ = try CompressionParameters(algorithm: entry.algorithm, level: level, dictionary: dictionary)
            entry.level = level
            entry.dictionary = dictionary
            entry.dictionaryPath = dictionary == nil ? nil : dictionaryPath
            settings.recompression[priority] = entry
        }
    }

    /// The recompression algorithm and parameters of each priority 1...3 (nil where none is set).
    public var recompressionParameters: [CompressionParameters?] {
        lifecycle.withShared { (try? settings.recompression.parameters()) ?? [nil, nil, nil] }
    }

    /// `recomp_algorithm` as the kernel prints it: `#N: ` and the algorithm list with the
    /// chosen one in brackets, one line per configured priority.
    var recompressionAlgorithmText: String {
        lifecycle.withShared {
            (1...RecompressorPools.highestPriority).compactMap { priority in
                settings.recompression[priority].map { "#\(priority): " + algorithmList(selecting: $0.algorithm) }
            }.joined()
        }
    }

    /// Parses `algo=NAME [priority=N]` (priority 1 when not given) for `recomp_algorithm`.
    func writeRecompressionAlgorithm(_ text: String) throws(ZramError) {
        var algorithm: CompressionAlgorithm?
        var priority = 1
        for (key, value) in try keyValues(text, attribute: "recomp_algorithm") {
            switch key {
            case "algo":
                guard let named = CompressionAlgorithm(named: value) else { throw .invalid("unknown algorithm '\(value)'") }
                algorithm = named
            case "priority":
                guard let parsed = Int(value) else { throw .invalid("priority '\(value)' is not a number") }
                priority = parsed
            default:
                throw .invalid("recomp_algorithm takes algo= and priority=, not '\(key)'")
            }
        }
        guard let algorithm else { throw .invalid("recomp_algorithm needs algo=NAME") }
        try setRecompressionAlgorithm(algorithm, priority: priority)
    }

    // MARK: Running a recompression

    /// What `recompress` was asked to do.
    public struct RecompressionRequest: Sendable, Equatable {
        public enum PageType: String, Sendable {
            case all, idle, huge, hugeIdle = "huge_idle"
        }
        public var type: PageType = .all
        /// Leave objects smaller than this alone; a result must be smaller too. 0 for none.
        public var threshold = 0
        /// Pages to try at most (a try counts whether or not it saved anything).
        public var maxPages: UInt64 = .max
        /// Use only this algorithm (one of the recompression priorities).
        public var algorithm: CompressionAlgorithm?
        /// Use only this priority (0 means 1).
        public var priority: Int?

        public init() {}

        /// Parses zram's `type=… threshold=BYTES max_pages=N algo=NAME priority=N`.
        /// - Throws: `EINVAL` for an unknown key or value, or a threshold at or above the huge class.
        public init(parsing text: String) throws(ZramError) {
            for (key, value) in try keyValues(text, attribute: "recompress") {
                switch key {
                case "type":
                    guard let parsed = PageType(rawValue: value), parsed != .all else {
                        throw .invalid("recompress type must be idle, huge or huge_idle, not '\(value)'")
                    }
                    type = parsed
                case "threshold":
                    guard let parsed = UInt32(value) else { throw .invalid("threshold '\(value)' is not a byte count") }
                    threshold = Int(parsed)
                case "max_pages":
                    guard let parsed = UInt64(value) else { throw .invalid("max_pages '\(value)' is not a number") }
                    maxPages = parsed
                case "algo":
                    guard let named = CompressionAlgorithm(named: value) else { throw .invalid("unknown algorithm '\(value)'") }
                    algorithm = named
                case "priority":
                    guard let parsed = UInt32(value) else { throw .invalid("priority '\(value)' is not a number") }
                    priority = Int(parsed)
                default:
                    // zram ignores unknown keys; we refuse them, so a misdirected `level=` (zram-generator#215) is an error.
                    throw .invalid("recompress takes type=, threshold=, max_pages=, algo= and priority=, not '\(key)'")
                }
            }
            guard threshold <= ZsPool.hugeThreshold else {
                throw .invalid("threshold \(threshold) is at or above the huge class (\(ZsPool.hugeThreshold + 1) bytes)")
            }
        }
    }

    /// What a `recompress` did.
    public struct RecompressionReport: Sendable, Equatable {
        /// Pages tried (what max_pages counts).
        public var attempted: UInt64 = 0
        /// Pages now stored smaller.
        public var recompressed: UInt64 = 0
        /// Compressed bytes saved.
        public var savedBytes: UInt64 = 0
    }

    /// Running totals since init: pages recompressed smaller and the compressed bytes saved.
    public var recompressionStatistics: (pages: UInt64, savedBytes: UInt64) {
        lifecycle.withShared {
            (UInt64(counters.recompressedPages.load(ordering: .relaxed)),
             UInt64(counters.recompressionSavedBytes.load(ordering: .relaxed)))
        }
    }

    /// Candidates one recompression batch works on before it lets a reset or disksize in.
    static let recompressionBatchPages = 64

    /// Recompresses pages as zram's `recompress` does: candidates are chosen first, then
    /// tried largest first (by 64-byte buckets), in batches that hold the lifecycle lock
    /// shared, so I/O goes on and a reset waits for one batch at most.
    /// - Throws: `ENXIO` before initialisation, `EAGAIN` while another recompression or a writeback runs,
    ///   `EINVAL` if no recompression algorithm fits the request, `EIO`/`ENOMEM` from a page.
    @discardableResult
    public func recompress(_ request: RecompressionRequest) throws(ZramError) -> RecompressionReport {
        try recompress(request, afterEachBatch: {})
    }

    /// - Parameters:
    ///   - afterEachBatch: runs after each batch, still under the lifecycle lock (tests).
    ///   - beforeInstalling: runs for each page between making its new copy and installing it (tests).
    func recompress(
        _ request: RecompressionRequest, afterEachBatch: () -> Void, beforeInstalling: ((Int) -> Void)? = nil
    ) throws(ZramError) -> RecompressionReport {
        guard isInitialized else { throw .invalid("\(name) has no disksize yet") }
        guard !postProcessing.exchange(true, ordering: .acquiring) else {
            throw ZramError(.tryAgain, "a recompression or writeback is already running on \(name)")
        }
        defer { postProcessing.store(false, ordering: .releasing) }
        var plan = try recompressionPlan(for: request)
        plan.beforeInstalling = beforeInstalling

        let page = UnsafeMutableRawBufferPointer.allocate(byteCount: pageSize, alignment: 64)
        defer { page.deallocate() }
        // 4096 / 64 + 1 buckets of candidate pages by object size, as zram's pp_ctl.
        var buckets = [[Int]](repeating: [], count: pageSize / 64 + 1)
        var scanPage = 0
        var scanning = true
        var budget = request.maxPages
        var report = RecompressionReport()
        var failure: ZramError?
        scanInBatches(afterEachBatch: afterEachBatch) { store in
            if scanning {
                // Pages still in the compression queue have no object to recompress yet.
                if scanPage == 0 { store.drain() }
                scanning = forEachChunk(of: store, from: &scanPage, limit: Self.idleBatchChunks) { firstPage, slots in
                    for offset in 0..<min(PageTable.pagesPerChunk, store.table.pageCount - firstPage) {
                        if let size = store.chooseForRecompression(firstPage + offset, slot: slots + offset, plan: plan) {
                            buckets[size / 64].append(firstPage + offset)
                        }
                    }
                }
                return true
            }
            var done = 0
            while done < Self.recompressionBatchPages, let bucket = buckets.lastIndex(where: { !$0.isEmpty }) {
                let index = buckets[bucket].removeLast()
                done += 1
                guard budget > 0, failure == nil else {
                    store.releaseRecompressionChoice(index)
                    continue
                }
                do throws(ZramError) {
                    if case .attempted(let saved) = try store.recompress(index, plan: plan, page: page) {
                        budget -= 1
                        report.attempted += 1
                        if saved > 0 {
                            report.recompressed += 1
                            report.savedBytes += UInt64(saved)
                        }
                    }
                } catch {
                    failure = error
                }
            }
            return buckets.contains { !$0.isEmpty }
        }
        if let failure { throw failure }
        return report
    }

    /// Resolves the priorities a request may use, as recompress_store does.
    private func recompressionPlan(for request: RecompressionRequest) throws(ZramError) -> ZramStore.RecompressionPlan {
        let configured = lifecycle.withShared { settings.recompression }
        let highest = (1...RecompressorPools.highestPriority).last { configured[$0] != nil } ?? 0
        var plan = ZramStore.RecompressionPlan()
        plan.idleOnly = request.type == .idle || request.type == .hugeIdle
        plan.hugeOnly = request.type == .huge || request.type == .hugeIdle
        plan.threshold = request.threshold
        plan.priorityLimit = highest + 1
        if let priority = request.priority {
            plan.firstPriority = max(priority, 1)
            plan.priorityLimit = plan.firstPriority + 1
        }
        if let algorithm = request.algorithm {
            guard let found = (plan.firstPriority...RecompressorPools.highestPriority).first(where: { configured[$0]?.algorithm == algorithm }) else {
                throw .invalid("recompress: \(algorithm) is not a recompression algorithm of \(name)")
            }
            plan.firstPriority = found
            plan.priorityLimit = found + 1
        }
        plan.priorityLimit = min(plan.priorityLimit, highest + 1)
        guard plan.firstPriority < plan.priorityLimit else {
            throw .invalid("recompress: no recompression algorithm for the request (set recomp_algorithm before disksize)")
        }
        plan.reachesHighest = plan.priorityLimit == highest + 1
        return plan
    }
}

// MARK: - Parsing helpers

extension CompressionAlgorithm {
    /// The algorithm by zram's name; `lzo-rle` (the kernel's default) is our lzo.
    init?(named name: String) {
        self.init(rawValue: name == "lzo-rle" ? "lzo" : name)
    }
}

/// The algorithms as zram lists them, the chosen one in brackets: `lzo [lz4] lz4hc zstd \n`.
func algorithmList(selecting chosen: CompressionAlgorithm) -> String {
    CompressionAlgorithm.allCases.map { $0 == chosen ? "[\($0)] " : "\($0) " }.joined() + "\n"
}

/// Splits `key=value key=value` (spaces, tabs or newlines between pairs).
/// - Throws: `EINVAL` for a token without `=` or with an empty value, as the kernel's next_arg parsing.
func keyValues(_ text: String, attribute: String) throws(ZramError) -> [(key: String, value: String)] {
    var pairs: [(key: String, value: String)] = []
    for token in text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }) {
        guard let equals = token.firstIndex(of: "="), token.index(after: equals) < token.endIndex else {
            throw .invalid("\(attribute) expects key=value, got '\(token)'")
        }
        pairs.append((String(token[..<equals]), String(token[token.index(after: equals)...])))
    }
    return pairs
}
