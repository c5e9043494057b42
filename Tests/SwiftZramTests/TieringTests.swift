#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing
@testable import SwiftZram

/// Automatic tiering: writes past mem_limit that write cold pages back instead of
/// failing, the policy pass (driven directly, on a manual clock: no test sleeps),
/// its knobs, and the kernel's behaviour when it is off.
@Suite struct TieringTests {
    static let memLimit: UInt64 = 1 << 20
    /// Pages of the working set: several times mem_limit once compressed.
    static let workingSet = 4000

    static func verify(_ device: ZramDevice, _ model: [[UInt8]], seed: UInt64, _ note: String = "") throws {
        for (index, page) in model.enumerated() {
            let got = try device.read(count: pageSize, at: UInt64(index * pageSize))
            #expect(got == page, "page \(index) differs \(note) (seed \(seed))")
            if got != page { return }
        }
    }

    /// Compressed bytes of every stored object, in RAM or in the backing store.
    static func compressedWorkingSet(_ device: ZramDevice, pages: Int) throws -> Int {
        try device.withInitializedStore { store in
            (0..<pages).reduce(0) { sum, index in
                guard let state = store.table.existingSlot(index)?.unlockedState,
                    state.hasObject || state.isWrittenBack
                else { return sum }
                return sum + state.objectSize
            }
        }
    }

    // MARK: Writes at mem_limit

    @Test(arguments: TieringData.allCases)
    func aWorkingSetOfTwiceMemLimitFailsWithoutTieringAndIsStoredWithIt(data: TieringData) throws {
        let seed: UInt64 = 0x7135_2000
        let model = try data.pages(Self.workingSet, seed: seed)

        let kernel = try ZramDevice.makeTiered(store: TestBackingStore(), tiering: false, memLimit: Self.memLimit)
        let refused = writeAll(kernel, model)
        #expect(!refused.isEmpty, "seed \(seed): without tiering the working set cannot fit")
        #expect(refused.allSatisfy { $0 == .memoryLimitReached }, "seed \(seed)")
        #expect(kernel.ioStatistics.failedWrites == UInt64(refused.count))
        #expect(kernel.bd == [0, 0, 0], "nothing is written back without tiering")
        print("TieringTests \(data): without tiering \(refused.count) of \(Self.workingSet) writes failed")

        let store = TestBackingStore()
        let device = try ZramDevice.makeTiered(store: store, tiering: true, memLimit: Self.memLimit)
        let failures = writeAll(device, model)
        #expect(failures.isEmpty, "seed \(seed): \(failures.count) writes failed with tiering")
        let compressed = try Self.compressedWorkingSet(device, pages: Self.workingSet)
        #expect(compressed >= 2 * Int(Self.memLimit), "seed \(seed): the working set is \(compressed) compressed bytes")
        let stat = device.memoryStatistics
        #expect(stat.memUsedTotal <= Self.memLimit)
        #expect(stat.origDataSize == UInt64(Self.workingSet * pageSize))
        let writtenBack = try device.writtenBackPages(0..<Self.workingSet).count
        #expect(writtenBack > 0)
        #expect(device.bd == [UInt64(writtenBack), 0, device.tieringStatistics.reclaimWrittenBack])
        #expect(device.tieringStatistics.savedWrites > 0)
        #expect(device.tieringStatistics.passes == 0, "no policy pass ran: the writes made their own room")
        #expect(device.ioStatistics.failedWrites == 0)
        try device.expectCountersExact("seed \(seed)")
        print(
            "TieringTests \(data): with tiering 0 failed; mem_used_total \(stat.memUsedTotal), bd_stat \(device.bd),",
            "tiering_stat \(device.tieringStatistics.fields), compressed working set \(compressed)")

        try Self.verify(device, model, seed: seed, "with tiering")
        #expect(device.bd[1] == UInt64(writtenBack), "each written-back page read once from the store")
    }

    @Test func thePackedLayoutKeepsEveryPageThroughWritesAtTheLimitAndPasses() throws {
        let seed: UInt64 = 0x9AC4
        let store = TestBackingStore()
        let device = try ZramDevice.makeTiered(store: store, tiering: true, memLimit: Self.memLimit, packed: true)
        let model = try TieringData.corpus.pages(Self.workingSet, seed: seed)  // objects of every size: blocks end part-full
        #expect(writeAll(device, model).isEmpty, "seed \(seed)")
        try device.writeAttribute("mem_limit", "0")
        try device.writeAttribute("tiering_high_watermark", "\(Self.memLimit / 2)")
        #expect(device.runTieringPass().writtenBack > 0)
        let writtenBack = try device.writtenBackPages(0..<Self.workingSet).count
        #expect(device.bd[0] < UInt64(writtenBack), "packed: fewer blocks than written-back pages")
        try Self.verify(device, model, seed: seed, "packed")
    }

    @Test func aSparseBackingFileTakesTheColdPages() throws {
        let seed: UInt64 = 0x5FA4_5E
        let scratch = try BackingScratch()
        defer { scratch.remove() }
        let file = try FileBackingStore.open(scratch.file("tier"))
        let device = try ZramDevice.makeTiered(store: file, tiering: true, memLimit: Self.memLimit)
        let model = try TieringData.corpus.pages(Self.workingSet, seed: seed)
        #expect(writeAll(device, model).isEmpty, "seed \(seed)")
        let writtenBack = try device.writtenBackPages(0..<Self.workingSet).count
        #expect(writtenBack > 0 && device.bd[0] == UInt64(writtenBack))
        let allocated = (fileStatus(scratch.file("tier"))?.st_blocks ?? 0) * 512
        #expect(allocated > 0 && allocated < 16 << 20, "the file stays sparse: \(allocated) bytes allocated")
        try Self.verify(device, model, seed: seed, "from a sparse file")
        try device.writeAttribute("reset", "1")
    }

    @Test func partialAndConcurrentWritesAtTheLimitAllSucceed() throws {
        let seed: UInt64 = 0xC0C0
        let store = TestBackingStore()
        let device = try ZramDevice.makeTiered(store: store, tiering: true, memLimit: 512 << 10)
        let writers = 4
        let perWriter = 500
        let model = try TieringData.fio60.pages(writers * perWriter, seed: seed)
        let outcomes = (0..<writers).map { _ in ThreadOutcome() }
        let threads = (0..<writers).map { writer in
            startThread { [device, model] in
                outcomes[writer].run { () throws(ZramError) in
                    for index in (writer * perWriter)..<((writer + 1) * perWriter) {
                        do {
                            try model[index].withUnsafeBytes { bytes in
                                let offset = UInt64(index * pageSize)
                                if index % 2 == 0 {
                                    try device.write(bytes, at: offset)
                                } else {
                                    // Two halves: the partial-page path (read-modify-write under the page's lock).
                                    try device.write(UnsafeRawBufferPointer(rebasing: bytes[0..<2048]), at: offset)
                                    try device.write(UnsafeRawBufferPointer(rebasing: bytes[2048...]), at: offset + 2048)
                                }
                            }
                        } catch {
                            throw error as! ZramError  // device writes throw only ZramError
                        }
                    }
                }
            }
        }
        for thread in threads { thread.join() }
        for (writer, outcome) in outcomes.enumerated() {
            #expect(outcome.error.withLock { $0 } == nil, "writer \(writer), seed \(seed)")
        }
        #expect(device.memoryStatistics.memUsedTotal <= 512 << 10)
        try Self.verify(device, model, seed: seed, "after concurrent writers")
        try device.expectCountersExact("seed \(seed)")
    }

    @Test func nothingToWriteBackFailsTheWriteAsWithoutTiering() throws {
        let seed: UInt64 = 0xF011
        // A store with room for 16 pages: once it is full, writes fail as the kernel's.
        let store = TestBackingStore(maximumCapacity: 16 * 4096)
        let device = try ZramDevice.makeTiered(store: store, tiering: true, memLimit: 256 << 10)
        let model = try TieringData.fio60.pages(600, seed: seed)
        let failures = writeAll(device, model)
        #expect(!failures.isEmpty && failures.allSatisfy { $0 == .memoryLimitReached }, "seed \(seed)")
        #expect(device.bd[0] == 16, "the store is full")
        #expect(device.ioStatistics.failedWrites == UInt64(failures.count))
        #expect(device.memoryStatistics.memUsedTotal <= 256 << 10)
    }

    // MARK: Off is the kernel

    @Test func offBehavesExactlyLikeTheKernel() throws {
        let seed: UInt64 = 0x0FF
        let model = try TieringData.fio60.pages(800, seed: seed)
        var rng = SplitMix64(seed: seed)
        let partial = (0..<64).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        func run(_ device: ZramDevice) throws -> (failures: [ZramError.Kind], mm: [UInt64], io: [UInt64]) {
            var failures = writeAll(device, model)
            for index in 0..<40 {
                do {
                    try device.write(partial, at: UInt64((900 + index) * pageSize + 100))
                } catch let error as ZramError {
                    failures.append(error.kind)
                }
            }
            return (failures, device.memoryStatistics.fields, device.ioStatistics.fields)
        }
        let bare = try ZramDevice.makeTiered(store: nil, tiering: false, memLimit: 512 << 10)
        let backedOff = try ZramDevice.makeTiered(store: TestBackingStore(), tiering: false, memLimit: 512 << 10)
        let onWithoutBacking = try ZramDevice.makeTiered(store: nil, tiering: true, memLimit: 512 << 10)
        let expected = try run(bare)
        #expect(!expected.failures.isEmpty)
        for (name, device) in [("backing_dev, tiering off", backedOff), ("tiering on, no backing_dev", onWithoutBacking)] {
            let got = try run(device)
            #expect(got.failures == expected.failures, "\(name), seed \(seed)")
            #expect(got.mm == expected.mm, "\(name): mm_stat")
            #expect(got.io == expected.io, "\(name): io_stat")
            #expect(device.bd == [0, 0, 0], "\(name)")
        }
        #expect(backedOff.runTieringPass() == .init(), "a pass with tiering off does nothing")
        #expect(backedOff.tieringStatistics == TieringStatistics())
        #expect(!backedOff.isTieringWorkerRunning)
    }

    // MARK: The policy pass

    @Test func aPassBringsMemUsedUnderTheWatermarkColdestFirst() throws {
        let seed: UInt64 = 0x3A7E
        let clock = AccessClock(manual: true)
        let device = try ZramDevice.makeTiered(store: TestBackingStore(), tiering: true, clock: clock)
        let model = try TieringData.fio60.pages(1000, seed: seed)
        _ = writeAll(device, Array(model[0..<500]))  // at 0 s
        clock.advance(bySeconds: 100)
        _ = writeAll(device, Array(model[500...]), from: 500)  // at 100 s
        clock.advance(bySeconds: 100)
        for index in 0..<100 { _ = try device.read(count: pageSize, at: UInt64(index * pageSize)) }  // pages 0-99 at 200 s
        let used = device.memoryStatistics.memUsedTotal
        let watermark = used / 4 * 3
        try device.writeAttribute("tiering_high_watermark", "\(watermark)")
        #expect(try device.readAttribute("tiering_high_watermark") == "\(watermark)\n")

        let report = device.runTieringPass()
        #expect(device.memoryStatistics.memUsedTotal <= watermark, "seed \(seed)")
        #expect(report.writtenBack > 0 && report.writtenBack <= 400, "\(report.writtenBack) pages written back")
        let writtenBack = try device.writtenBackPages(0..<1000)
        #expect(writtenBack.allSatisfy { (100..<500).contains($0) }, "only the coldest pages go: \(writtenBack.prefix(8))")
        #expect(device.tieringStatistics.policyWrittenBack == UInt64(report.writtenBack))
        #expect(device.tieringStatistics.passes == 1)
        try Self.verify(device, model, seed: seed, "after the pass")
        try device.expectCountersExact("seed \(seed)")
    }

    @Test func writesAtTheLimitTakeIdlePagesBeforeOlderPagesThatAreNotIdle() throws {
        let seed: UInt64 = 0x1D1E
        let clock = AccessClock(manual: true)
        let device = try ZramDevice.makeTiered(store: TestBackingStore(), tiering: true, clock: clock)
        let model = try TieringData.fio60.pages(450, seed: seed)
        _ = writeAll(device, Array(model[0..<200]))  // at 0 s
        clock.advance(bySeconds: 100)
        _ = writeAll(device, Array(model[200..<400]), from: 200)  // at 100 s
        // Pages 300-399 marked idle (as a manual `idle` leaves them), the older 0-299 not.
        try device.withInitializedStore { store in
            for index in 300..<400 {
                let slot = store.table.existingSlot(index)!
                let state = slot.lock()
                slot.unlock(setting: PageState(rawValue: state.rawValue | PageState.idleBit))
            }
        }
        try device.writeAttribute("writeback_limit_enable", "1")
        try device.writeAttribute("writeback_limit", "64")
        try device.writeAttribute("mem_limit", "\(device.memoryStatistics.memUsedTotal)")
        _ = writeAll(device, Array(model[400...]), from: 400)
        let writtenBack = try device.writtenBackPages(0..<450)
        #expect(writtenBack == Array(300..<364), "idle pages first, in page order: \(writtenBack.prefix(8)) (seed \(seed))")
    }

    @Test func writesAtTheLimitRaceManualWritebackWithoutDeadlockOrLoss() throws {
        let seed: UInt64 = 0xD3AD
        let device = try ZramDevice.makeTiered(store: TestBackingStore(), tiering: true, memLimit: 512 << 10)
        let model = try TieringData.fio60.pages(1500, seed: seed)
        let done = TestFlag()
        let unexpected = ThreadOutcome()
        let manual = startThread { [device] in
            unexpected.run { () throws(ZramError) in
                var rounds = 0
                while !done.isRaised && rounds < 100_000 {
                    rounds += 1
                    do throws(ZramError) {
                        try device.writeAttribute("writeback", rounds % 2 == 0 ? "huge" : "incompressible")
                    } catch {
                        guard error.kind == .tryAgain else { throw error }  // EAGAIN: a write was making room
                    }
                }
            }
        }
        let failures = writeAll(device, model)
        _ = done.raise()
        manual.join()
        #expect(unexpected.error.withLock { $0 } == nil)
        #expect(failures.allSatisfy { $0 == .memoryLimitReached }, "seed \(seed): \(Set(failures.map { "\($0)" }))")
        var expected = model
        if !failures.isEmpty {
            // A write that found the device busy for its whole wait failed as the kernel's would; find which.
            for index in 0..<model.count where try device.read(count: pageSize, at: UInt64(index * pageSize)) != model[index] {
                expected[index] = [UInt8](repeating: 0, count: pageSize)
            }
            #expect(expected.filter { $0.allSatisfy { $0 == 0 } }.count == failures.count, "only failed writes are missing")
        }
        try Self.verify(device, expected, seed: seed, "after racing manual writeback")
        print("TieringTests race: \(failures.count) of \(model.count) writes failed while writeback commands ran")
    }

    @Test func aPassWritesBackPagesColdForTheWritebackAge() throws {
        let seed: UInt64 = 0xA6E
        let clock = AccessClock(manual: true)
        let device = try ZramDevice.makeTiered(store: TestBackingStore(), tiering: true, clock: clock)
        try device.writeAttribute("tiering_writeback_age", "1000")
        let model = try TieringData.corpus.pages(200, seed: seed)
        _ = writeAll(device, Array(model[0..<100]))  // at 0 s
        clock.advance(bySeconds: 800)
        _ = writeAll(device, Array(model[100...]), from: 100)  // at 800 s
        #expect(device.runTieringPass().writtenBack == 0, "nothing is 1000 s old yet")
        clock.advance(bySeconds: 400)  // 1200 s: pages 0-99 are 1200 s old, 100-199 400 s
        let report = device.runTieringPass()
        #expect(try device.writtenBackPages(0..<200) == Array(0..<100), "seed \(seed)")
        #expect(report.writtenBack == 100)
        try Self.verify(device, model, seed: seed)
    }

    @Test func aPassStaysWithinWritebackLimitAndSoDoWritesAtTheLimit() throws {
        let seed: UInt64 = 0x11A1
        let device = try ZramDevice.makeTiered(store: TestBackingStore(), tiering: true)
        let model = try TieringData.fio60.pages(1200, seed: seed)
        _ = writeAll(device, Array(model[0..<1000]))
        try device.writeAttribute("writeback_limit_enable", "1")
        try device.writeAttribute("writeback_limit", "50")
        try device.writeAttribute("tiering_high_watermark", "4096")
        #expect(device.runTieringPass().writtenBack == 50, "seed \(seed)")
        #expect(device.bd == [50, 0, 50])
        #expect(try device.readAttribute("writeback_limit") == "0\n")

        // With the limit used up, a write past mem_limit fails as without tiering.
        try device.writeAttribute("mem_limit", "\(device.memoryStatistics.memUsedTotal)")
        let failures = writeAll(device, Array(model[1000...]), from: 1000)
        #expect(!failures.isEmpty && failures.allSatisfy { $0 == .memoryLimitReached }, "seed \(seed)")
        #expect(device.bd == [50, 0, 50])
        try device.writeAttribute("writeback_limit", "100000")
        #expect(writeAll(device, Array(model[1000...]), from: 1000).isEmpty, "with budget again, the writes make room")
        try Self.verify(device, model, seed: seed)
    }

    @Test func hostMemoryPressureActsAsIfOverTheWatermark() throws {
        let seed: UInt64 = 0x9512
        let device = try ZramDevice.makeTiered(store: TestBackingStore(), tiering: true)
        let pressure = FixedPressure()
        device.tiering.pressure.withLock { $0 = pressure }
        let model = try TieringData.corpus.pages(800, seed: seed)
        _ = writeAll(device, model)

        pressure.percent.withLock { $0 = 90 }
        #expect(device.runTieringPass().writtenBack == 0, "tiering_psi_threshold 0 ignores pressure")
        try device.writeAttribute("tiering_psi_threshold", "10")
        pressure.percent.withLock { $0 = nil }
        #expect(device.runTieringPass().writtenBack == 0, "no PSI on the host: nothing to react to")
        pressure.percent.withLock { $0 = 9.99 }
        #expect(device.runTieringPass().writtenBack == 0, "under the threshold")

        pressure.percent.withLock { $0 = 10.5 }
        let before = device.memoryStatistics.memUsedTotal
        let report = device.runTieringPass()
        #expect(report.underPressure && report.writtenBack > 0, "seed \(seed)")
        #expect(device.memoryStatistics.memUsedTotal <= before / 8 * 7)
        try Self.verify(device, model, seed: seed, "after a pass under pressure")
    }

    @Test func procPressureParsesTheSomeLine() throws {
        let text = "some avg10=12.34 avg60=5.00 avg300=1.00 total=123456\nfull avg10=1.00 avg60=0.00 avg300=0.00 total=5\n"
        #expect(ProcMemoryPressure.someAverage10(in: text) == 12.34)
        #expect(ProcMemoryPressure.someAverage10(in: "full avg10=1.00\n") == nil)
        #expect(ProcMemoryPressure.someAverage10(in: "some avg10=junk\n") == nil)
        let scratch = try BackingScratch()
        defer { scratch.remove() }
        let path = scratch.file("memory")
        let descriptor = open(path, O_CREAT | O_WRONLY, 0o600)
        _ = text.withCString { write(descriptor, $0, strlen($0)) }
        close(descriptor)
        #expect(ProcMemoryPressure(path: path).someAverage10() == 12.34)
        #expect(ProcMemoryPressure(path: scratch.file("missing")).someAverage10() == nil)
    }

    @Test func aPassRecompressesIdlePagesWithTheSecondaryAlgorithm() throws {
        let seed: UInt64 = 0x2EC0
        let clock = AccessClock(manual: true)
        let device = try ZramDevice.makeTiered(store: nil, tiering: true, clock: clock, secondaries: [.zstd])
        let model = try TieringData.corpus.pages(128, seed: seed)
        _ = writeAll(device, Array(model[0..<64]))  // at 0 s
        clock.advance(bySeconds: 400)
        _ = writeAll(device, Array(model[64...]), from: 64)  // at 400 s: younger than tiering_idle_age (300 s)
        let compressedBefore = device.memoryStatistics.comprDataSize
        let report = device.runTieringPass()
        #expect(report.recompressed > 0, "seed \(seed)")
        #expect(report.writtenBack == 0, "no backing_dev: the pass only recompresses")
        #expect(device.tieringStatistics.policyRecompressed == UInt64(report.recompressed))
        #expect(device.memoryStatistics.comprDataSize < compressedBefore)
        let priorities = try (0..<128).map { try device.pageState($0).priority }
        #expect(priorities[64...].allSatisfy { $0 == 0 }, "recently used pages keep the primary algorithm")
        #expect(priorities[..<64].filter { $0 == 1 }.count == report.recompressed)
        try Self.verify(device, model, seed: seed, "after recompression")
        try device.expectCountersExact("seed \(seed)")
        #expect(device.runTieringPass().recompressed == 0, "a second pass finds nothing more to gain")
    }

    @Test func aResetDuringAPassEndsIt() throws {
        let seed: UInt64 = 0x2E5E7
        let store = TestBackingStore()
        let device = try ZramDevice.makeTiered(store: store, tiering: true)
        _ = writeAll(device, try TieringData.fio60.pages(2000, seed: seed))
        try device.writeAttribute("writeback_batch_size", "4")
        try device.writeAttribute("tiering_high_watermark", "4096")
        let resetThread = ThreadBox()
        let outcome = ThreadOutcome()
        store.beforeWrite.withLock { hook in
            hook = { [device] _ in
                guard resetThread.thread.withLock({ $0 == nil }) else { return }
                resetThread.thread.withLock { thread in
                    thread = startThread { outcome.run { () throws(ZramError) in try device.reset() } }
                }
                // The pass holds the lifecycle lock: wait (bounded) until the reset queues behind it.
                var waits = 0
                while !device.lifecycle.hasWaitingWriter && waits < 100_000 {
                    usleep(100)
                    waits += 1
                }
            }
        }
        let report = device.runTieringPass()
        resetThread.thread.withLock { $0 }?.join()
        #expect(outcome.isFinished && outcome.error.withLock { $0 } == nil)
        #expect(report.writtenBack <= 4, "the pass ended at the reset after one batch: \(report.writtenBack)")
        #expect(!device.isInitialized && store.isClosed)
        #expect(!device.isTieringWorkerRunning)
        try device.setDiskSize(1 << 20)
        #expect(device.isTieringWorkerRunning, "tiering_enable survives a reset, as writeback_limit does")
        #expect(try device.read(count: pageSize, at: 0) == [UInt8](repeating: 0, count: pageSize))
    }

    // MARK: The thread

    @Test func theThreadStartsWithTieringAndStopsOnResetDisableAndRelease() throws {
        let names = NameLog()
        let start: @Sendable () -> Void = { names.recordCurrentThread() }
        do {
            let device = try ZramDevice.makeTiered(store: TestBackingStore(), tiering: false, workerStart: start)
            #expect(!device.isTieringWorkerRunning, "off by default")
            try device.writeAttribute("tiering_enable", "1")
            #expect(device.isTieringWorkerRunning)
            var waits = 0
            while !names.names.withLock({ $0.contains(TieringWorker.threadName) }) && waits < 100_000 {
                usleep(100)
                waits += 1
            }
            #expect(names.names.withLock { $0.contains("zram-tier") }, "the thread runs workerStart (an I/O flusher in znbd)")
            try device.writeAttribute("reset", "1")
            #expect(!device.isTieringWorkerRunning, "reset stops it (and joins it)")
            try device.writeAttribute("tiering_enable", "1")
            #expect(!device.isTieringWorkerRunning, "not before disksize")
            try device.setDiskSize(1 << 20)
            #expect(device.isTieringWorkerRunning)
            try device.writeAttribute("tiering_enable", "0")
            #expect(!device.isTieringWorkerRunning)
            try device.writeAttribute("tiering_enable", "1")
            device.open()
            #expect(throws: ZramError.self) { try device.reset() }
            #expect(device.isTieringWorkerRunning, "a reset refused with EBUSY leaves the thread running")
            device.close()
        }
        // The device is released with its thread running: deinit stops it without waiting an interval.
        #expect(names.names.withLock { $0.filter { $0 == "zram-tier" }.count } >= 1)
    }

    // MARK: Attributes

    @Test func knobsReadAndWriteLikeTheKernelsAttributes() throws {
        let device = ZramDevice(name: "zram-knobs", streams: 1, queuePages: 0)
        let defaults = [
            "tiering_enable": "0\n", "tiering_idle_age": "300\n", "tiering_writeback_age": "1800\n",
            "tiering_high_watermark": "0\n", "tiering_interval": "60\n", "tiering_psi_threshold": "0\n",
        ]
        for (name, value) in defaults {
            #expect(try device.readAttribute(name) == value, "\(name)")
            #expect(ZramDevice.readableAttributes.contains(name) && ZramDevice.writableAttributes.contains(name))
        }
        #expect(try device.readAttribute("tiering_stat") == TieringStatistics().kernelText)
        #expect(try device.readAttribute("tiering_stat").split(separator: " ").count == 5)
        #expect(ZramDevice.readableAttributes.contains("tiering_stat") && !ZramDevice.writableAttributes.contains("tiering_stat"))

        let good = [
            ("tiering_high_watermark", "64M", "67108864"), ("tiering_idle_age", "0x10", "16"),
            ("tiering_writeback_age", "0", "0"), ("tiering_interval", "5", "5"), ("tiering_psi_threshold", "100", "100"),
            ("tiering_enable", "1", "1"), ("tiering_enable", "0", "0"), ("tiering_idle_age", " 7\n", "7"),
        ]
        for (name, value, read) in good {
            try device.writeAttribute(name, value)
            #expect(try device.readAttribute(name) == read + "\n", "\(name) \(value)")
        }
        let bad = [
            ("tiering_enable", "2"), ("tiering_enable", "on"), ("tiering_enable", ""), ("tiering_idle_age", "-1"),
            ("tiering_idle_age", "4294967296"), ("tiering_writeback_age", "soon"), ("tiering_interval", "0"),
            ("tiering_high_watermark", "lots"), ("tiering_psi_threshold", "101"), ("tiering_psi_threshold", "1.5"),
            ("tiering_stat", "0"),
        ]
        for (name, value) in bad {
            #expect(throwsKind(.invalidArgument) { try device.writeAttribute(name, value) }, "\(name) '\(value)'")
        }
        #expect(try device.readAttribute("tiering_idle_age") == "7\n", "a refused write changes nothing")
        try device.reset()
        #expect(try device.readAttribute("tiering_interval") == "5\n", "reset keeps the knobs, as writeback_limit")
    }
}
