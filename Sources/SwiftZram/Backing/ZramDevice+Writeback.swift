import Synchronization

/// zram's writeback: moving stored pages to the backing store (`backing_dev`),
/// with the kernel's command forms, limits, statistics and errors.
extension ZramDevice {
    /// One range of pages a writeback command scans, and which pages of it it takes.
    struct WritebackScan: Equatable {
        var filter: WritebackFilter
        var pages: Range<Int>
    }

    /// The most pages one batch moves, whatever writeback_batch_size says: the batch
    /// buffer holds a copy of each (4 MiB at this size).
    static let largestWritebackBatch = 1024

    /// The opener a device gets by default: a block device or a regular file (created sparse).
    /// ZnbdKit's devices also open NBD URIs.
    public static let openBackingFile: BackingStoreOpener = { name throws(ZramError) in
        try FileBackingStore.open(name)
    }

    /// bd_stat: zeros before initialisation or without a backing store.
    public var backingStatistics: BackingStatistics {
        let statistics = try? withInitializedStore { store throws(ZramError) in store.backing?.statistics }
        return (statistics ?? nil) ?? BackingStatistics()
    }

    /// Runs a `writeback` command: `idle`, `huge`, `huge_idle`, `incompressible`,
    /// `page_index=N`, or the key=value forms `type=MODE`, `page_index=N`,
    /// `page_indexes=LO-HI` (inclusive), where page_index(es) may repeat.
    ///
    /// Pages go a batch at a time (writeback_batch_size); I/O on other pages goes on
    /// meanwhile, and a page written while its copy is on the way keeps the new data.
    /// - Returns: pages written back.
    /// - Throws: `EINVAL` before initialisation or for a malformed command, `EAGAIN` while
    ///   another writeback or recompression runs, `ENODEV` without a backing_dev, `ENOSPC`
    ///   when the backing store is full, `EIO` when writeback_limit runs out (after writing
    ///   what it allowed) or a backing write failed (the page stays in RAM).
    @discardableResult
    public func writeback(_ command: String) throws(ZramError) -> Int {
        guard let pageCount = try? withInitializedStore({ store throws(ZramError) in store.table.pageCount }) else {
            throw .invalid("\(name) has no disksize yet")
        }
        guard !postProcessing.exchange(true, ordering: .acquiring) else {
            throw ZramError(.tryAgain, "a writeback or recompression is already running on \(name)")
        }
        defer { postProcessing.store(false, ordering: .releasing) }
        guard backingDevice != nil else { throw ZramError(.noDevice, "\(name) has no backing_dev") }
        let scans = try Self.parseWriteback(command, pageCount: pageCount)
        return try runWriteback(scans)
    }

    /// Parses a writeback command as the kernel does: a mode (bare or `type=`) scans the
    /// range chosen so far (the whole device if none) and ends the command; each
    /// `page_index=`/`page_indexes=` before it scans its range for any page.
    static func parseWriteback(_ command: String, pageCount: Int) throws(ZramError) -> [WritebackScan] {
        var pages = 0..<pageCount
        var scans: [WritebackScan] = []
        for token in command.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }) {
            let equals = token.firstIndex(of: "=")
            let key = equals.map { token[..<$0] } ?? token
            let value = equals.map { token[token.index(after: $0)...] } ?? ""
            if value.isEmpty || key == "type" {
                guard let mode = WritebackFilter(mode: value.isEmpty ? key : value) else {
                    throw .invalid("unknown writeback mode '\(value.isEmpty ? key : value)'; use idle, huge, huge_idle or incompressible")
                }
                scans.append(WritebackScan(filter: mode, pages: pages))
                return scans
            }
            switch key {
            case "page_index":
                let index = try pageIndex(value, pageCount: pageCount)
                pages = index..<(index + 1)
            case "page_indexes":
                guard let dash = value.firstIndex(of: "-") else { throw .invalid("page_indexes takes LO-HI, got '\(value)'") }
                let low = try pageIndex(value[..<dash], pageCount: pageCount)
                let high = try pageIndex(value[value.index(after: dash)...], pageCount: pageCount)
                guard low <= high else { throw ZramError(.outOfRange, "page_indexes \(low)-\(high) is empty") }
                pages = low..<(high + 1)
            default:
                throw .invalid("unknown writeback parameter '\(key)'")
            }
            scans.append(WritebackScan(filter: .any, pages: pages))
        }
        guard !scans.isEmpty else { throw .invalid("writeback needs a mode or page_index") }
        return scans
    }

    private static func pageIndex(_ text: Substring, pageCount: Int) throws(ZramError) -> Int {
        guard let index = Int(text), index >= 0 else { throw .invalid("'\(text)' is not a page index") }
        guard index < pageCount else {
            throw ZramError(.outOfRange, "page \(index) is past the last page, \(pageCount - 1)")
        }
        return index
    }

    /// Runs the scans in order, one batch per hold of the lifecycle lock, and stops
    /// if the device is reset (or reset and initialised again) between two batches.
    private func runWriteback(_ scans: [WritebackScan]) throws(ZramError) -> Int {
        let size = Int(writebackControls.batchSize.load(ordering: .relaxed))
        let batch = try WritebackBatch(capacity: min(max(size, 1), Self.largestWritebackBatch))
        let controls = writebackControls
        var written = 0
        var failure: ZramError?
        var stop: WritebackStop?
        var scanIndex = 0
        var cursor = scans.first?.pages.lowerBound ?? 0
        scanInBatches { store in
            store.drain()  // queued pages become objects, which writeback can take
            let scan = scans[scanIndex]
            let picked = store.pickWriteback(
                scan.filter, pages: scan.pages, cursor: &cursor, batch: batch, controls: controls)
            if let error = store.writeBatch(batch) { failure = error }
            written += store.installBatch(batch, controls: controls)
            stop = picked.stop
            guard stop == nil else { return false }
            if picked.finished {
                scanIndex += 1
                guard scanIndex < scans.count else { return false }
                cursor = scans[scanIndex].pages.lowerBound
            }
            return true
        }
        switch stop {
        case .limitReached: throw ZramError(.ioError, "writeback_limit is used up (\(written) pages written)")
        case .noSpace: throw ZramError(.noSpace, "the backing store is full (\(written) pages written)")
        case nil: break
        }
        if let failure { throw failure }
        return written
    }
}

// MARK: - Attributes

extension ZramDevice {
    static let writebackReadableAttributes = [
        "backing_dev", "writeback_limit", "writeback_limit_enable", "writeback_batch_size", "writeback_auto",
        "writeback_layout", "bd_layout_stat",
    ]
    static let writebackWritableAttributes = [
        "backing_dev", "writeback", "writeback_limit", "writeback_limit_enable", "writeback_batch_size", "writeback_auto",
        "writeback_layout",
    ]

    /// The text of a writeback attribute, nil for other attributes.
    func readWritebackAttribute(_ name: String) -> String? {
        switch name {
        case "backing_dev": return (backingDevice ?? "none") + "\n"
        case "bd_stat": return backingStatistics.kernelText
        case "writeback_limit": return "\(writebackControls.limit.load(ordering: .relaxed))\n"
        case "writeback_limit_enable": return writebackControls.limitEnabled.load(ordering: .relaxed) ? "1\n" : "0\n"
        case "writeback_batch_size": return "\(writebackControls.batchSize.load(ordering: .relaxed))\n"
        case "writeback_auto": return writebackControls.autoEnabled.load(ordering: .relaxed) ? "1\n" : "0\n"
        case "writeback_layout": return writebackControls.packedLayout.load(ordering: .relaxed) ? "page [packed]\n" : "[page] packed\n"
        case "bd_layout_stat":
            let fields = try? withInitializedStore { store throws(ZramError) in store.backing?.layoutStatistics }
            return kernelStatLine((fields ?? nil) ?? [0, 0, 0, 0])
        default: return nil
        }
    }

    /// Writes a writeback attribute. - Returns: false for other attributes.
    func writeWritebackAttribute(_ name: String, _ value: String) throws(ZramError) -> Bool {
        switch name {
        case "backing_dev":
            guard !value.isEmpty else { throw .invalid("backing_dev needs a path") }
            try setBackingDevice(value)
        case "writeback":
            try writeback(value)
        case "writeback_limit":
            guard let pages = UInt64(value) else { throw .invalid("writeback_limit takes a number of 4 KiB pages") }
            writebackControls.limit.store(pages, ordering: .relaxed)
        case "writeback_limit_enable":
            guard let flag = UInt64(value) else { throw .invalid("writeback_limit_enable takes 0 or 1") }
            writebackControls.limitEnabled.store(flag != 0, ordering: .relaxed)
        case "writeback_batch_size":
            guard let size = UInt32(value), size > 0 else { throw .invalid("writeback_batch_size takes a number above 0") }
            writebackControls.batchSize.store(size, ordering: .relaxed)
        case "writeback_layout":
            guard value == "page" || value == "packed" else { throw .invalid("writeback_layout takes page or packed") }
            guard !isInitialized else { throw .busy("\(self.name) is initialised: reset it before changing writeback_layout") }
            writebackControls.packedLayout.store(value == "packed", ordering: .relaxed)
        case "writeback_auto":
            guard value == "0" || value == "1" else { throw .invalid("writeback_auto takes 0 or 1") }
            writebackControls.autoEnabled.store(value == "1", ordering: .relaxed)
        default:
            return false
        }
        return true
    }
}
