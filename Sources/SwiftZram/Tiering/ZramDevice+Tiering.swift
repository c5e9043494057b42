/// Automatic tiering, beyond the kernel: with `tiering_enable` set, a device with a
/// backing_dev writes its coldest pages back when a write reaches mem_limit (as zswap
/// does; ``MemoryRelief``, also on with `writeback_auto`) instead of failing it, and a
/// policy thread ages, recompresses and writes back cold pages on its own, keeping
/// mem_used_total under a watermark and reacting to host memory pressure. Off, the device behaves exactly as the kernel's zram.
extension ZramDevice {
    /// What one policy pass did.
    struct TieringPassReport: Equatable {
        var recompressed = 0
        var writtenBack = 0
        /// Whether the pass acted on host memory pressure.
        var underPressure = false
    }

    /// Under pressure without a watermark, a pass brings mem_used_total down to this share of what it was.
    static let pressureTargetEighths = 7

    /// tiering_stat.
    public var tieringStatistics: TieringStatistics {
        tiering.statistics(movedAtLimit: writebackControls.pagesMovedAutomatically.load(ordering: .relaxed))
    }

    /// The tiering knobs by attribute name and tiering_stat's fields by name (`znbd status --json`).
    public var tieringStatus: [String: UInt64] {
        var status = Dictionary(uniqueKeysWithValues: zip(TieringStatistics.fieldNames, tieringStatistics.fields))
        status["tiering_enable"] = tiering.isEnabled ? 1 : 0
        status["tiering_idle_age"] = tiering.idleAge.load(ordering: .relaxed)
        status["tiering_writeback_age"] = tiering.writebackAge.load(ordering: .relaxed)
        status["tiering_high_watermark"] = tiering.highWatermark.load(ordering: .relaxed)
        status["tiering_interval"] = tiering.interval.load(ordering: .relaxed)
        status["tiering_psi_threshold"] = tiering.psiThreshold.load(ordering: .relaxed)
        return status
    }

    // MARK: The policy

    /// One policy pass: marks pages idle by `tiering_idle_age`; recompresses idle pages
    /// when recomp_algorithm is set; writes back pages not accessed for
    /// `tiering_writeback_age`; then writes back the coldest pages until mem_used_total
    /// is under `tiering_high_watermark` (or 7/8 of what it was, under PSI pressure over
    /// `tiering_psi_threshold`). Writeback stays within writeback_limit. Steps that find
    /// another writeback or recompression running are left for the next pass.
    @discardableResult
    func runTieringPass() -> TieringPassReport {
        var report = TieringPassReport()
        guard tiering.isEnabled, isInitialized else { return report }
        tiering.passes.add(1, ordering: .relaxed)
        markIdle(.olderThan(seconds: tiering.idleAge.load(ordering: .relaxed)))

        let hasRecompression = lifecycle.withShared { settings.recompression.entries.contains { $0 != nil } }
        if hasRecompression {
            var request = RecompressionRequest()
            request.type = .idle
            if let done = try? recompress(request) { report.recompressed = Int(done.recompressed) }
            tiering.policyRecompressed.add(report.recompressed, ordering: .relaxed)
        }

        guard backingDevice != nil else { return report }
        let writebackAge = tiering.writebackAge.load(ordering: .relaxed)
        if writebackAge > 0 {
            report.writtenBack += writeBackCold(olderThanSeconds: writebackAge, target: nil)
        }
        var target = Int(clamping: tiering.highWatermark.load(ordering: .relaxed))
        let threshold = tiering.psiThreshold.load(ordering: .relaxed)
        if threshold > 0, let pressure = tiering.pressure.withLock({ $0.someAverage10() }), pressure > Double(threshold) {
            report.underPressure = true
            let used = memoryStatistics.memUsedTotal
            let reduced = Int(used / 8 * UInt64(Self.pressureTargetEighths))
            target = target == 0 ? reduced : min(target, reduced)
        }
        if target > 0 || report.underPressure {
            report.writtenBack += writeBackCold(olderThanSeconds: nil, target: target)
        }
        tiering.policyWrittenBack.add(report.writtenBack, ordering: .relaxed)
        return report
    }

    /// Writes back the coldest pages in batches of writeback_batch_size, each batch under
    /// the lifecycle lock and the post-processing flag, until none is left that was not
    /// accessed for `age` seconds (any page when nil), or mem_used_total is at or under
    /// `target`, or writeback_limit or the backing store runs out.
    /// - Returns: pages written back.
    private func writeBackCold(olderThanSeconds age: UInt64?, target: Int?) -> Int {
        let size = Int(writebackControls.batchSize.load(ordering: .relaxed))
        guard let batch = try? WritebackBatch(capacity: min(max(size, 1), Self.largestWritebackBatch)) else { return 0 }
        var queue = ColdPageQueue()
        var cutoff: UInt64?
        var first = true
        var written = 0
        scanInBatches { store in
            if first, let age {
                // Fixed at the first batch, so the pass's own length does not age pages.
                let now = store.clock.now
                cutoff = now > age ? now - age : 0
            }
            first = false
            let before = cutoff
            if before == 0 { return false }  // nothing can be that old yet
            if let target, store.memoryUsed <= target { return false }
            guard !postProcessing.exchange(true, ordering: .acquiring) else { return false }
            defer { postProcessing.store(false, ordering: .releasing) }
            let done = store.writeBackColdBatch(queue: &queue, accessedBefore: before, batch: batch, controls: writebackControls)
            written += done.written
            return done.written > 0 && done.stop == nil
        }
        // Each batch compacts a little; what writeback emptied beyond that goes back now.
        if let target, written > 0, memoryStatistics.memUsedTotal > UInt64(target) { compact() }
        return written
    }

    // MARK: The policy thread

    /// Starts the policy thread if tiering is on and the device initialised (and it is not running).
    func startTieringWorkerIfEnabled() {
        guard tiering.isEnabled, isInitialized else { return }
        tieringWorker.withLock { worker in
            guard worker == nil else { return }
            let controls = tiering
            // unowned(unsafe): the device stops and joins the thread (deinit, reset) before
            // its storage goes, so the reference is valid whenever the thread uses it.
            worker = try? TieringWorker(
                interval: { controls.interval.load(ordering: .relaxed) }, start: workerStart,
                pass: { [unowned(unsafe) self] in _ = self.runTieringPass() })
        }
    }

    /// Stops the policy thread and waits for its pass in progress. Call without the lifecycle lock.
    func stopTieringWorker() {
        let worker = tieringWorker.withLock { worker in
            defer { worker = nil }
            return worker
        }
        worker?.stop()
    }

    /// Whether the policy thread runs (tests).
    var isTieringWorkerRunning: Bool { tieringWorker.withLock { $0 != nil } }

    // MARK: Attributes

    static let tieringWritableAttributes = [
        "tiering_enable", "tiering_idle_age", "tiering_writeback_age", "tiering_high_watermark",
        "tiering_interval", "tiering_psi_threshold",
    ]
    static let tieringReadableAttributes = tieringWritableAttributes + ["tiering_stat"]

    /// The text of a tiering attribute, nil for other attributes.
    func readTieringAttribute(_ name: String) -> String? {
        switch name {
        case "tiering_enable": return tiering.isEnabled ? "1\n" : "0\n"
        case "tiering_idle_age": return "\(tiering.idleAge.load(ordering: .relaxed))\n"
        case "tiering_writeback_age": return "\(tiering.writebackAge.load(ordering: .relaxed))\n"
        case "tiering_high_watermark": return "\(tiering.highWatermark.load(ordering: .relaxed))\n"
        case "tiering_interval": return "\(tiering.interval.load(ordering: .relaxed))\n"
        case "tiering_psi_threshold": return "\(tiering.psiThreshold.load(ordering: .relaxed))\n"
        case "tiering_stat": return tieringStatistics.kernelText
        default: return nil
        }
    }

    /// Writes a tiering attribute. - Returns: false for other attributes.
    func writeTieringAttribute(_ name: String, _ value: String) throws(ZramError) -> Bool {
        switch name {
        case "tiering_enable":
            guard let flag = UInt64(value), flag <= 1 else { throw .invalid("tiering_enable takes 0 or 1") }
            tiering.enabled.store(flag == 1, ordering: .relaxed)
            if flag == 1 { startTieringWorkerIfEnabled() } else { stopTieringWorker() }
        case "tiering_idle_age":
            tiering.idleAge.store(try Self.seconds(value, name), ordering: .relaxed)
        case "tiering_writeback_age":
            tiering.writebackAge.store(try Self.seconds(value, name), ordering: .relaxed)
        case "tiering_high_watermark":
            guard let bytes = memparse(value), bytes <= UInt64(Int.max) else {
                throw .invalid("tiering_high_watermark '\(value)' is not a size")
            }
            tiering.highWatermark.store(bytes, ordering: .relaxed)
        case "tiering_interval":
            let seconds = try Self.seconds(value, name)
            guard seconds > 0 else { throw .invalid("tiering_interval takes a number of seconds above 0") }
            tiering.interval.store(seconds, ordering: .relaxed)
        case "tiering_psi_threshold":
            guard let percent = UInt64(value), percent <= 100 else {
                throw .invalid("tiering_psi_threshold takes a percent, 0 (off) to 100")
            }
            tiering.psiThreshold.store(percent, ordering: .relaxed)
        case "tiering_stat":
            throw .invalid("tiering_stat is read-only")
        default:
            return false
        }
        return true
    }

    /// Seconds as `idle` takes them (decimal, or hex with `0x`), up to 2^32 - 1.
    private static func seconds(_ text: String, _ attribute: String) throws(ZramError) -> UInt64 {
        let parsed: UInt32? = text.hasPrefix("0x") ? UInt32(text.dropFirst(2), radix: 16) : UInt32(text)
        guard let parsed else { throw .invalid("\(attribute) takes a number of seconds, not '\(text)'") }
        return UInt64(parsed)
    }
}
