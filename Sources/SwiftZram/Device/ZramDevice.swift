#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// A userspace zram device: a compressed, page-granular RAM disk with the
/// kernel's control semantics.
///
/// Lifecycle, as in the kernel: configure the algorithm (and optionally its
/// parameters and `mem_limit`), set `disksize` to initialise, do I/O, `reset`
/// to free everything and start over. Changing the algorithm or disksize of an
/// initialised device fails with `EBUSY`, as does `reset` while the device is
/// open (an NBD client is attached).
///
/// I/O may come from many threads at once. It holds the lifecycle lock shared,
/// so control operations that replace the device's state wait for in-flight I/O.
// @unchecked: `store` (and its twin `ioStore`), `settings` and `counters` are read only under
// `lifecycle` held shared and written only under it held exclusively.
public final class ZramDevice: @unchecked Sendable {
    public let name: String

    let lifecycle = LifecycleLock()
    private var store: ZramStore? {
        didSet { ioStore = store }
    }
    /// `store` for the I/O path, read without a retain/release pair: `store` owns it,
    /// and both change only under `lifecycle` held exclusively.
    private unowned(unsafe) var ioStore: ZramStore?
    var settings: Settings
    var counters = DeviceCounters()
    /// Changes whenever `store` is replaced, so a scan that dropped the lock can tell.
    private var generation = 0
    private let openCount = Atomic<Int>(0)
    /// Opens what `backing_dev` names.
    let backingOpener: BackingStoreOpener
    /// writeback_limit(_enable) and writeback_batch_size.
    let writebackControls = WritebackControls()
    /// Set while a writeback or recompression runs: another one fails with EAGAIN (zram's pp_in_progress).
    let postProcessing = Atomic<Bool>(false)
    /// The access-time clock every initialisation uses; nil for the system's (tests set a manual one).
    let manualClock: AccessClock?
    /// The tiering_* knobs and counters (automatic tiering).
    let tiering = TieringControls()
    /// The tiering policy thread, while tiering is on and the device initialised.
    let tieringWorker = Mutex<TieringWorker?>(nil)

    /// Configuration that applies at the next initialisation.
    struct Settings {
        var algorithm: CompressionAlgorithm = .default
        var level: Int?
        var dictionary: [UInt8]?
        var dictionaryPath: String?
        var streams: Int
        var queuePages: Int
        /// The open `backing_dev`, if set; prepared and handed to the store at disksize.
        var backingStore: (any BackingStore)?
        /// recomp_algorithm and its algorithm_params, by priority.
        var recompression = RecompressionSettings()
    }

    /// Compression queue slots a device gets: 256 pages (1 MiB) of writes accepted before compression.
    public static let defaultQueuePages = 256

    let workerStart: (@Sendable () -> Void)?

    /// The stream count a device gets when none is given: one per CPU, as zram's per-CPU streams.
    public static var defaultStreamCount: Int {
        min(64, max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    /// - Parameters:
    ///   - name: the device name (`zram0`), also its NBD export name.
    ///   - streams: compression streams, 1...64; defaults to the CPU count.
    ///   - queuePages: compression queue slots (a power of two), pages a write may leave for the
    ///     device's compressor thread so that it returns before compression; 0 compresses inline.
    ///   - workerStart: runs first on the device's own threads: compressor, reserve and
    ///     request helpers (e.g. to mark them I/O flushers).
    ///   - backingOpener: opens what `backing_dev` names (a path, or a URI another module knows).
    public convenience init(
        name: String, streams: Int = ZramDevice.defaultStreamCount, queuePages: Int = ZramDevice.defaultQueuePages,
        workerStart: (@Sendable () -> Void)? = nil, backingOpener: @escaping BackingStoreOpener = ZramDevice.openBackingFile
    ) {
        self.init(
            name: name, streams: streams, queuePages: queuePages, workerStart: workerStart, manualClock: nil,
            backingOpener: backingOpener)
    }

    /// - Parameter manualClock: the access-time clock to use instead of the system's (tests).
    init(
        name: String, streams: Int = ZramDevice.defaultStreamCount, queuePages: Int = ZramDevice.defaultQueuePages,
        workerStart: (@Sendable () -> Void)? = nil, manualClock: AccessClock?,
        backingOpener: @escaping BackingStoreOpener = ZramDevice.openBackingFile
    ) {
        precondition(queuePages >= 0 && queuePages & (queuePages - 1) == 0, "queuePages must be 0 or a power of two")
        self.name = name
        self.settings = Settings(streams: min(64, max(1, streams)), queuePages: queuePages)
        self.workerStart = workerStart
        self.backingOpener = backingOpener
        self.manualClock = manualClock
    }

    deinit {
        stopTieringWorker()
        store?.shutdown()
        settings.backingStore?.close()
    }

    // MARK: Reading the state

    /// initstate: whether disksize has been set.
    public var isInitialized: Bool { lifecycle.withShared { store != nil } }

    /// Whether disksize has been set; only under `lifecycle`.
    var isInitializedLocked: Bool { store != nil }

    /// disksize in bytes; 0 before initialisation.
    public var diskSize: UInt64 { lifecycle.withShared { store?.diskSize ?? 0 } }

    public var algorithm: CompressionAlgorithm { lifecycle.withShared { settings.algorithm } }

    /// The compression parameters the device uses (or will use once initialised).
    public var compressionParameters: CompressionParameters {
        lifecycle.withShared {
            (try? CompressionParameters(
                algorithm: settings.algorithm, level: settings.level, dictionary: settings.dictionary))
                ?? (try! CompressionParameters(algorithm: settings.algorithm))
        }
    }

    /// Path of the dictionary file set through `algorithm_params dict=PATH`, if any.
    public var dictionaryPath: String? { lifecycle.withShared { settings.dictionaryPath } }

    public var streamCount: Int { lifecycle.withShared { settings.streams } }

    /// Clients currently attached (the device is "open").
    public var openers: Int { openCount.load(ordering: .relaxed) }

    /// mm_stat.
    public var memoryStatistics: MemoryStatistics {
        lifecycle.withShared {
            store?.drain()
            var stat = MemoryStatistics()
            stat.memLimit = UInt64(counters.memLimit.load(ordering: .relaxed))
            stat.memUsedMax = UInt64(counters.memUsedMax.load(ordering: .relaxed))
            let queued = counters.queuedPages.load(ordering: .relaxed) * pageSize
            stat.origDataSize = UInt64(counters.storedPages.load(ordering: .relaxed)) * UInt64(pageSize)
            stat.comprDataSize = UInt64(counters.comprDataSize.load(ordering: .relaxed) + queued)
            stat.samePages = UInt64(counters.samePages.load(ordering: .relaxed))
            stat.hugePages = UInt64(counters.hugePages.load(ordering: .relaxed))
            stat.hugePagesSince = UInt64(counters.hugePagesSince.load(ordering: .relaxed))
            if let store {
                stat.memUsedTotal = UInt64(store.memoryUsed)
                stat.pagesCompacted = UInt64(store.pool.pagesCompacted)
            }
            return stat
        }
    }

    /// io_stat, plus the page read/write counters.
    public var ioStatistics: IOStatistics {
        lifecycle.withShared {
            var stat = IOStatistics()
            stat.failedReads = UInt64(counters.failedReads.load(ordering: .relaxed))
            stat.failedWrites = UInt64(counters.failedWrites.load(ordering: .relaxed))
            stat.invalidIO = UInt64(counters.invalidIO.load(ordering: .relaxed))
            stat.notifyFree = UInt64(counters.notifyFree.load(ordering: .relaxed))
            stat.pagesRead = UInt64(counters.pagesRead.load(ordering: .relaxed))
            stat.pagesWritten = UInt64(counters.pagesWritten.load(ordering: .relaxed))
            return stat
        }
    }

    /// Bytes the page table holds (not part of mem_used_total, as in the kernel).
    public var tableMemoryUsed: Int { lifecycle.withShared { store?.table.memoryUsed ?? 0 } }

    // MARK: Control

    /// The largest disksize: 32 PiB, what the page table can address (see
    /// ``PageTable/maximumPageCount``). An empty device costs the same at every size.
    public static let maximumDiskSize = UInt64(PageTable.maximumPageCount) * UInt64(pageSize)

    /// Sets disksize and initialises the device. Rounded up to whole pages.
    /// - Throws: `EBUSY` if already initialised, `EINVAL` for 0, `ENOMEM` (as the kernel's
    ///   zram, whose table allocation fails) above ``maximumDiskSize`` or if the system
    ///   refuses memory. Nothing is allocated before the size is checked.
    public func setDiskSize(_ bytes: UInt64) throws(ZramError) {
        try lifecycle.withExclusive { () throws(ZramError) in
            guard store == nil else {
                throw .busy("\(name) is initialised: reset it before changing disksize")
            }
            guard bytes > 0 else { throw .invalid("disksize must be greater than 0") }
            guard bytes <= Self.maximumDiskSize else {
                throw ZramError(
                    .outOfMemory, "disksize \(bytes) is above the largest device, \(Self.maximumDiskSize) bytes (32 PiB)")
            }
            let size = (bytes + UInt64(pageSize) - 1) & ~UInt64(pageSize - 1)
            let parameters = try CompressionParameters(
                algorithm: settings.algorithm, level: settings.level, dictionary: settings.dictionary)
            let backing = try settings.backingStore.map { backing throws(ZramError) in
                try BackingTier.prepared(
                    backing, diskSize: size, packed: writebackControls.packedLayout.load(ordering: .relaxed))
            }
            store = try ZramStore(
                diskSize: size, compression: parameters, streams: settings.streams, counters: counters,
                queuePages: settings.queuePages, workerStart: workerStart,
                recompression: try settings.recompression.parameters(), clock: manualClock ?? AccessClock(),
                backing: backing, relief: backing.map { _ in MemoryRelief(device: self) })
            generation += 1
        }
        startTieringWorkerIfEnabled()
    }

    /// Chooses the compression algorithm, resetting its parameters to their defaults.
    /// - Throws: `EBUSY` once initialised.
    public func setAlgorithm(_ algorithm: CompressionAlgorithm) throws(ZramError) {
        try lifecycle.withExclusive { () throws(ZramError) in
            guard store == nil else {
                throw .busy("\(name) is initialised: reset it before changing comp_algorithm")
            }
            settings.algorithm = algorithm
            settings.level = nil
            settings.dictionary = nil
            settings.dictionaryPath = nil
        }
    }

    /// Sets the algorithm's level and dictionary (zram's algorithm_params).
    /// - Throws: `EBUSY` once initialised, `EINVAL` for a level or dictionary the algorithm rejects.
    public func setAlgorithmParameters(level: Int?, dictionary: [UInt8]?, dictionaryPath: String? = nil) throws(ZramError) {
        try lifecycle.withExclusive { () throws(ZramError) in
            guard store == nil else {
                throw .busy("\(name) is initialised: reset it before changing algorithm_params")
            }
            _ = try CompressionParameters(algorithm: settings.algorithm, level: level, dictionary: dictionary)
            settings.level = level
            settings.dictionary = dictionary
            settings.dictionaryPath = dictionary == nil ? nil : dictionaryPath
        }
    }

    /// backing_dev: the name the backing store was opened with, nil when none is set.
    public var backingDevice: String? { lifecycle.withShared { settings.backingStore?.name } }

    /// Opens `name` as the backing store (zram's backing_dev), replacing one set before.
    /// - Throws: `EBUSY` once initialised, else what the opener throws (the old store stays).
    public func setBackingDevice(_ name: String) throws(ZramError) {
        let busy = ZramError.busy("\(self.name) is initialised: reset it before changing backing_dev")
        guard !isInitialized else { throw busy }
        // Opened without the lifecycle lock: connecting to a remote store may take long,
        // and status and I/O must not wait for it meanwhile.
        let opened = try backingOpener(name)
        let installed = lifecycle.withExclusive { () -> Bool in
            guard store == nil else { return false }
            settings.backingStore?.close()
            settings.backingStore = opened
            return true
        }
        guard installed else {
            opened.close()
            throw busy
        }
    }

    /// Sets the number of compression streams for the next initialisation.
    /// - Throws: `EBUSY` once initialised, `EINVAL` outside 1...64.
    public func setStreamCount(_ streams: Int) throws(ZramError) {
        try lifecycle.withExclusive { () throws(ZramError) in
            guard store == nil else { throw .busy("\(name) is initialised: reset it before changing streams") }
            guard (1...64).contains(streams) else { throw .invalid("streams must be 1...64") }
            settings.streams = streams
        }
    }

    /// The largest mem_limit: page-rounded, it still fits the byte counters.
    public static let maximumMemoryLimit = UInt64(Int.max) - UInt64(pageSize)

    /// Sets mem_limit (rounded up to whole pages; 0 removes it). Takes effect at once.
    public func setMemoryLimit(_ bytes: UInt64) throws(ZramError) {
        guard bytes <= Self.maximumMemoryLimit else { throw .invalid("mem_limit is too large") }
        let aligned = (bytes + UInt64(pageSize) - 1) & ~UInt64(pageSize - 1)
        lifecycle.withShared {
            // Queued pages may still hold objects they replaced: free them before the limit counts.
            store?.drain()
            counters.memLimit.store(Int(aligned), ordering: .relaxed)
        }
    }

    /// Resets mem_used_max to the current mem_used_total (writing `0` to the attribute).
    public func resetMemoryPeak() {
        lifecycle.withShared {
            store?.drain()
            counters.memUsedMax.store(store?.memoryUsed ?? 0, ordering: .relaxed)
        }
    }

    /// Frees everything and returns the device to uninitialised, with default settings.
    /// - Throws: `EBUSY` while a client has the device open.
    public func reset() throws(ZramError) {
        // The policy thread takes the lifecycle lock: stop it first, restart it if the reset fails.
        stopTieringWorker()
        do {
            try resetLocked()
        } catch {
            startTieringWorkerIfEnabled()
            throw error
        }
    }

    private func resetLocked() throws(ZramError) {
        try lifecycle.withExclusive { () throws(ZramError) in
            let users = openCount.load(ordering: .relaxed)
            guard users == 0 else {
                throw .busy("\(name) is in use by \(users) client\(users == 1 ? "" : "s")")
            }
            store?.shutdown()
            store = nil
            generation += 1
            counters = DeviceCounters()
            // As the kernel's reset_bdev: the backing device is closed and backing_dev reads `none`.
            settings.backingStore?.close()
            settings = Settings(streams: settings.streams, queuePages: settings.queuePages)
        }
    }

    /// Runs `batch` with the store, holding the lifecycle lock shared for one batch
    /// at a time, until it returns false or the device is reset or re-initialised.
    ///
    /// Between batches the lock is free, so a disksize or reset waits for one batch,
    /// not for the whole scan, and I/O queued behind it goes on.
    /// - Parameter afterEachBatch: runs after each batch, still under the lock.
    /// - Returns: the batches run.
    @discardableResult
    func scanInBatches(afterEachBatch: () -> Void = {}, _ batch: (ZramStore) -> Bool) -> Int {
        var scanned: Int?
        var batches = 0
        var more = true
        while more {
            more = lifecycle.withShared {
                guard let store, scanned == nil || scanned == generation else { return false }
                scanned = generation
                batches += 1
                defer { afterEachBatch() }
                return batch(store)
            }
        }
        return batches
    }

    /// Runs `body` with the store under the lifecycle lock held shared.
    /// - Throws: `ENXIO` before initialisation.
    @inline(__always)
    func withInitializedStore<R>(_ body: (ZramStore) throws(ZramError) -> R) throws(ZramError) -> R {
        try lifecycle.withShared { () throws(ZramError) -> R in
            guard let store = ioStore else { throw ZramError(.notInitialized, "\(name) has no disksize yet") }
            return try body(store)
        }
    }

    // MARK: Openers

    /// Records that a client opened the device; `reset` fails with EBUSY until `close()`.
    /// Taken under the lifecycle lock, so it is ordered with `reset`'s check: the client
    /// opens either before the reset (which then fails) or after it (and sees its result).
    public func open() { lifecycle.withShared { _ = openCount.add(1, ordering: .relaxed) } }

    public func close() { openCount.subtract(1, ordering: .relaxed) }
}
