#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing
@testable import SwiftZram

/// Writeback against the kernel's measured behaviour (shared/reference/zram.md,
/// "Writeback as the real kernel does it"), with every page read back byte for byte.
@Suite struct WritebackTests {
    /// Writes `pages` from page 0 and returns them as the model.
    static func fill(_ device: ZramDevice, _ pages: [[UInt8]]) throws -> [[UInt8]] {
        for (index, page) in pages.enumerated() { try device.write(page, at: UInt64(index * pageSize)) }
        return pages
    }

    static func verify(_ device: ZramDevice, _ model: [[UInt8]], seed: UInt64, _ note: String = "") throws {
        for (index, page) in model.enumerated() {
            let got = try device.read(count: pageSize, at: UInt64(index * pageSize))
            #expect(got == page, "page \(index) differs \(note) (seed \(seed))")
            if got != page { return }
        }
    }

    /// fio-like pages with every 16th page zero-filled (same-filled pages stay in RAM).
    static func fioPages(_ count: Int, seed: UInt64) -> [[UInt8]] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { index in
            index % 16 == 5 ? [UInt8](repeating: 0, count: pageSize) : WritebackData.fioPage(using: &rng)
        }
    }

    /// Counts slots in the written-back state, to check bd_count against the table.
    static func writtenBackSlots(_ device: ZramDevice, pages: Int) throws -> Int {
        try device.withInitializedStore { store in
            (0..<pages).filter { store.table.existingSlot($0)?.unlockedState.isWrittenBack ?? false }.count
        }
    }

    @Test(arguments: [(CompressionAlgorithm.lz4, 0), (.lz4, ZramDevice.defaultQueuePages), (.zstd, 0)])
    func idleWritebackMovesEveryStoredPageAndReadsBackWithoutPromotion(
        algorithm: CompressionAlgorithm, queuePages: Int
    ) throws {
        let seed: UInt64 = 284
        let store = TestBackingStore()
        let device = try ZramDevice.makeBacked(by: store, algorithm, queuePages: queuePages)
        let model = try Self.fill(device, Self.fioPages(284, seed: seed))
        let sameCount = model.filter { $0.allSatisfy { $0 == 0 } }.count
        let moved = UInt64(284 - sameCount)
        let before = device.memoryStatistics
        try device.writeAttribute("idle", "all")
        try device.writeAttribute("writeback", "idle")

        #expect(device.bd == [moved, 0, moved], "seed \(seed)")
        let after = device.memoryStatistics
        #expect(after.origDataSize == before.origDataSize, "written-back pages still count in orig_data_size")
        #expect(after.origDataSize == 284 * 4096)
        #expect(after.comprDataSize == 0)
        #expect(after.memUsedTotal == 0)
        #expect(after.memUsedMax == before.memUsedMax, "mem_used_max keeps its peak")
        #expect(after.samePages == UInt64(sameCount))
        #expect(try Self.writtenBackSlots(device, pages: 284) == Int(moved))

        try Self.verify(device, model, seed: seed, "after writeback")
        #expect(device.bd == [moved, moved, moved], "each read of a written-back page is one bd_read")
        try Self.verify(device, model, seed: seed, "on the second read")
        #expect(device.bd == [moved, 2 * moved, moved], "reads leave the pages in the backing store")
        #expect(device.memoryStatistics.comprDataSize == 0)

        // A second writeback finds nothing left to move.
        try device.writeAttribute("idle", "all")
        try device.writeAttribute("writeback", "idle")
        #expect(device.bd[2] == moved)
    }

    @Test func overwriteDiscardAndWriteZeroesFreeBackingBlocks() throws {
        let seed: UInt64 = 77
        let store = TestBackingStore()
        let device = try ZramDevice.makeBacked(by: store, queuePages: 0)
        var rng = SplitMix64(seed: seed)
        var model = try Self.fill(device, (0..<64).map { _ in WritebackData.fioPage(using: &rng) })
        try device.writeAttribute("writeback", "page_indexes=0-63")
        #expect(device.bd == [64, 0, 64])
        for index in 0..<8 {
            model[index] = WritebackData.fioPage(using: &rng)
            try device.write(model[index], at: UInt64(index * pageSize))
        }
        #expect(device.bd[0] == 56, "an overwrite frees the page's block")
        try device.discard(offset: UInt64(8 * pageSize), length: UInt64(8 * pageSize))
        for index in 8..<16 { model[index] = [UInt8](repeating: 0, count: pageSize) }
        #expect(device.bd[0] == 48, "a discard frees the blocks")
        try device.writeZeroes(offset: UInt64(16 * pageSize), length: UInt64(4 * pageSize), deallocate: false)
        for index in 16..<20 { model[index] = [UInt8](repeating: 0, count: pageSize) }
        #expect(device.bd[0] == 44, "write-zeroes frees the blocks")
        #expect(store.discarded == 20 * pageSize, "the store is told what was freed")
        try Self.verify(device, model, seed: seed)
        #expect(device.memoryStatistics.origDataSize == UInt64(56 * pageSize))

        // The freed blocks are reused.
        try device.writeAttribute("writeback", "page_indexes=0-7")
        #expect(device.bd == [52, 44, 72])
        try Self.verify(device, model, seed: seed, "after reuse")
        try device.writeAttribute("reset", "1")
        try device.setDiskSize(4 << 20)
        #expect(try device.read(count: 64 * pageSize, at: 0) == [UInt8](repeating: 0, count: 64 * pageSize))
    }

    @Test func hugeWritebackMovesRawPagesAndKeepsHugePagesSince() throws {
        let seed: UInt64 = 1024
        let device = try ZramDevice.makeBacked(by: TestBackingStore(), queuePages: 0)
        var rng = SplitMix64(seed: seed)
        var pages = (0..<256).map { _ in DeviceTestPage.noise.bytes(using: &rng) }
        pages += (0..<32).map { _ in DeviceTestPage.text.bytes(using: &rng) }
        let model = try Self.fill(device, pages)
        #expect(device.memoryStatistics.hugePages == 256)
        try device.writeAttribute("writeback", "huge")
        #expect(device.bd == [256, 0, 256])
        let stat = device.memoryStatistics
        #expect(stat.hugePages == 0)
        #expect(stat.hugePagesSince == 256)
        #expect(stat.origDataSize == UInt64(288 * pageSize))
        #expect(stat.comprDataSize > 0, "the text pages stay in RAM")
        try Self.verify(device, model, seed: seed)
        // Partial reads of raw written-back pages come straight from the store.
        let piece = try device.read(count: 100, at: UInt64(3 * pageSize + 1000))
        #expect(piece == Array(model[3][1000..<1100]))
        // huge_idle takes only idle huge pages: none are left.
        try device.writeAttribute("idle", "all")
        try device.writeAttribute("writeback", "huge_idle")
        #expect(device.bd[2] == 256)
    }

    @Test(arguments: [32, 7, 1])
    func theLimitWritesExactlyItsPagesThenEIO(batchSize: Int) throws {
        let seed: UInt64 = 100
        let device = try ZramDevice.makeBacked(by: TestBackingStore())
        var rng = SplitMix64(seed: seed)
        let model = try Self.fill(device, (0..<284).map { _ in WritebackData.fioPage(using: &rng) })
        try device.writeAttribute("writeback_batch_size", "\(batchSize)")
        try device.writeAttribute("idle", "all")
        try device.writeAttribute("writeback_limit_enable", "1")
        try device.writeAttribute("writeback_limit", "100")
        #expect(throwsKind(.ioError) { try device.writeAttribute("writeback", "idle") })
        #expect(device.bd == [100, 0, 100], "batch \(batchSize)")
        #expect(try device.readAttribute("writeback_limit") == "0\n")
        #expect(throwsKind(.ioError) { try device.writeAttribute("writeback", "idle") })
        #expect(device.bd == [100, 0, 100])
        try device.writeAttribute("writeback_limit", "50")
        #expect(throwsKind(.ioError) { try device.writeAttribute("writeback", "idle") })
        #expect(device.bd == [150, 0, 150])
        // A budget that matches the candidates exactly writes them all without error (6.16).
        try device.writeAttribute("writeback_limit", "134")
        try device.writeAttribute("writeback", "idle")
        #expect(device.bd == [284, 0, 284])
        #expect(try device.readAttribute("writeback_limit") == "0\n")
        try Self.verify(device, model, seed: seed)
    }

    @Test func disablingTheLimitLetsWritebackFinish() throws {
        let device = try ZramDevice.makeBacked(by: TestBackingStore())
        var rng = SplitMix64(seed: 5)
        let model = try Self.fill(device, (0..<40).map { _ in WritebackData.fioPage(using: &rng) })
        try device.writeAttribute("writeback_limit_enable", "1")
        #expect(throwsKind(.ioError) { try device.writeAttribute("writeback", "page_indexes=0-39") })
        #expect(device.bd == [0, 0, 0])
        try device.writeAttribute("writeback_limit_enable", "0")
        try device.writeAttribute("writeback", "page_indexes=0-39")
        #expect(device.bd == [40, 0, 40])
        #expect(try device.readAttribute("writeback_limit") == "0\n", "the limit is not charged while off")
        try Self.verify(device, model, seed: 5)
    }

    @Test func pageIndexFormsSkipSameFilledAndWrittenBackPages() throws {
        let seed: UInt64 = 64
        let device = try ZramDevice.makeBacked(by: TestBackingStore())
        let model = try Self.fill(device, Self.fioPages(64, seed: seed))  // pages 5, 21, 37, 53 are zeros
        try device.writeAttribute("writeback", "page_index=3")
        #expect(device.bd == [1, 0, 1])
        try device.writeAttribute("writeback", "page_index=5")
        #expect(device.bd == [1, 0, 1], "same-filled pages are never written back")
        try device.writeAttribute("writeback", "page_index=3")
        #expect(device.bd == [1, 0, 1], "written-back pages are skipped")
        try device.writeAttribute("writeback", "page_index=10 page_index=11 page_indexes=20-23")
        #expect(device.bd == [6, 0, 6], "page 21 is same-filled")
        try device.writeAttribute("writeback", "page_indexes=30-40 type=huge")
        #expect(device.bd == [16, 0, 16], "fio pages are not huge: only the range scan moves")
        try Self.verify(device, model, seed: seed)
        try device.writeAttribute("writeback", "page_indexes=60-63")
        #expect(try Self.writtenBackSlots(device, pages: 64) == 20)
        #expect(device.bd[0] == 20)
    }

    @Test func aSmallStoreGivesENOSPCAfterFillingIt() throws {
        let seed: UInt64 = 20
        let store = TestBackingStore(maximumCapacity: 20 * 4096)
        let device = try ZramDevice.makeBacked(by: store)
        var rng = SplitMix64(seed: seed)
        var model = try Self.fill(device, (0..<50).map { _ in WritebackData.fioPage(using: &rng) })
        try device.writeAttribute("idle", "all")
        #expect(throwsKind(.noSpace) { try device.writeAttribute("writeback", "idle") })
        #expect(device.bd == [20, 0, 20])
        try Self.verify(device, model, seed: seed)
        for index in 0..<5 {
            model[index] = WritebackData.fioPage(using: &rng)
            try device.write(model[index], at: UInt64(index * pageSize))
        }
        #expect(device.bd[0] == 15)
        try device.writeAttribute("idle", "all")
        #expect(throwsKind(.noSpace) { try device.writeAttribute("writeback", "idle") })
        #expect(device.bd == [20, 20, 25])
        try Self.verify(device, model, seed: seed, "after refilling")
    }

    @Test(arguments: [1, 4])
    func aBackingWriteErrorIsEIOAndLeavesThePagesInRAM(batchSize: Int) throws {
        let seed: UInt64 = 33
        let store = TestBackingStore()
        let device = try ZramDevice.makeBacked(by: store, queuePages: 0)
        var rng = SplitMix64(seed: seed)
        let model = try Self.fill(device, (0..<16).map { _ in WritebackData.fioPage(using: &rng) })
        try device.writeAttribute("writeback_batch_size", "\(batchSize)")
        let before = device.memoryStatistics
        store.failingWrites.store(1000, ordering: .relaxed)
        #expect(throwsKind(.ioError) { try device.writeAttribute("writeback", "page_indexes=0-15") })
        #expect(device.bd == [0, 0, 0])
        #expect(device.memoryStatistics == before)
        try Self.verify(device, model, seed: seed, "after failed writes")
        // One failing write: the rest of the pages go, the failed ones stay.
        store.failingWrites.store(1, ordering: .relaxed)
        try device.writeAttribute("writeback_limit_enable", "1")
        try device.writeAttribute("writeback_limit", "1000")
        #expect(throwsKind(.ioError) { try device.writeAttribute("writeback", "page_indexes=0-15") })
        let moved = device.bd[0]
        #expect(moved == UInt64(16 - batchSize), "one write of \(batchSize) blocks failed")
        #expect(try device.readAttribute("writeback_limit") == "\(1000 - moved)\n", "failed pages are not charged")
        try Self.verify(device, model, seed: seed, "after one failed write")
        try device.writeAttribute("writeback", "page_indexes=0-15")
        #expect(device.bd[0] == 16)
        try Self.verify(device, model, seed: seed, "after the retry")
    }

    @Test func aBackingReadErrorIsEIOForThatRequestAndALaterReadRetries() throws {
        let seed: UInt64 = 44
        let store = TestBackingStore()
        let device = try ZramDevice.makeBacked(by: store, queuePages: 0)
        var rng = SplitMix64(seed: seed)
        var model = try Self.fill(device, [WritebackData.fioPage(using: &rng), DeviceTestPage.noise.bytes(using: &rng)])
        try device.writeAttribute("writeback", "page_indexes=0-1")
        for (offset, count) in [(0, pageSize), (100, 10), (pageSize, pageSize), (pageSize + 7, 300)] {
            store.failingReads.store(1, ordering: .relaxed)
            let failedBefore = device.ioStatistics.failedReads
            #expect(throwsKind(.ioError) { _ = try device.read(count: count, at: UInt64(offset)) })
            #expect(device.ioStatistics.failedReads == failedBefore + 1)
            let page = offset / pageSize
            let inPage = offset % pageSize
            #expect(try device.read(count: count, at: UInt64(offset)) == Array(model[page][inPage..<(inPage + count)]))
        }
        // A partial write needs the old page: a read error fails it and changes nothing.
        store.failingReads.store(1, ordering: .relaxed)
        let failedWrites = device.ioStatistics.failedWrites
        #expect(throwsKind(.ioError) { try device.write([1, 2, 3], at: 10) })
        #expect(device.ioStatistics.failedWrites == failedWrites + 1)
        try Self.verify(device, model, seed: seed, "after a failed partial write")
        try device.write([1, 2, 3], at: 10)
        model[0].replaceSubrange(10..<13, with: [1, 2, 3])
        try Self.verify(device, model, seed: seed, "after the partial write")
        #expect(device.bd[0] == 1, "the partial write moved page 0 back to RAM")
    }

    @Test(arguments: ["page", "packed"])
    func partialWritesAndReadsOfWrittenBackPagesMatchAModel(layout: String) throws {
        let seed: UInt64 = 0xB10C
        let device = try ZramDevice.makeBacked(by: TestBackingStore(), layout: layout)
        var rng = SplitMix64(seed: seed)
        let kinds: [DeviceTestPage] = [.text, .records, .pointers, .noise, .halfNoise]
        var model = try Self.fill(device, (0..<32).map { kinds[$0 % kinds.count].bytes(using: &rng) })
        var flat = model.flatMap { $0 }
        for round in 0..<40 {
            if round % 5 == 0 { try device.writeAttribute("writeback", "page_indexes=0-31") }
            let offset = Int(rng.next() % UInt64(flat.count - 1))
            let count = 1 + Int(rng.next() % UInt64(min(3 * pageSize, flat.count - offset)))
            if rng.next() % 2 == 0 {
                let bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next() % 7) }
                try device.write(bytes, at: UInt64(offset))
                flat.replaceSubrange(offset..<(offset + count), with: bytes)
            } else {
                let got = try device.read(count: count, at: UInt64(offset))
                #expect(got == Array(flat[offset..<(offset + count)]), "round \(round) (seed \(seed))")
            }
        }
        model = stride(from: 0, to: flat.count, by: pageSize).map { Array(flat[$0..<($0 + pageSize)]) }
        try Self.verify(device, model, seed: seed)
        if layout == "page" { #expect(try Self.writtenBackSlots(device, pages: 32) == Int(device.bd[0])) }
    }

    /// The store's write hook overwrites the very page whose copy is being written:
    /// the overwrite must win and the copy's block must be given back.
    @Test func aWriteDuringTheCopysFlightWins() throws {
        let seed: UInt64 = 9
        let store = TestBackingStore()
        let device = try ZramDevice.makeBacked(by: store, queuePages: 0)
        var rng = SplitMix64(seed: seed)
        var model = try Self.fill(device, (0..<8).map { _ in WritebackData.fioPage(using: &rng) })
        try device.writeAttribute("writeback_batch_size", "1")
        let replacement = DeviceTestPage.text.bytes(using: &rng)
        model[2] = replacement
        let raced = TestFlag()
        store.beforeWrite.withLock { hook in
            hook = { [device] _ in
                // The copy in flight is page 2's: overwrite page 2 now, once.
                guard raced.raise() else { return }
                try? device.write(replacement, at: UInt64(2 * pageSize))
            }
        }
        // Page 2 alone, so the hook's write races exactly its copy.
        try device.writeAttribute("writeback", "page_index=2")
        #expect(raced.isRaised)
        #expect(device.bd == [0, 0, 1], "the copy was written (bd_writes) but not installed")
        #expect(store.discarded == pageSize, "its block was given back")
        store.beforeWrite.withLock { $0 = nil }
        try Self.verify(device, model, seed: seed)
        try device.writeAttribute("writeback", "page_indexes=0-7")
        #expect(device.bd == [8, 0, 9])
        try Self.verify(device, model, seed: seed, "after the second writeback")
    }

    @Test(arguments: ["page", "packed"])
    func racingWritersAgainstRepeatedWritebackKeepTheirData(layout: String) throws {
        let seed: UInt64 = 0x5EED
        let pages = 128
        let store = TestBackingStore()
        let device = try ZramDevice.makeBacked(by: store, diskSize: UInt64(pages * pageSize), layout: layout)
        try device.writeAttribute("writeback_batch_size", "8")
        // Slow discards (a file system punching holes): a writeback must not reuse
        // room freed by an overwrite before its discard is done, or the discard wipes it.
        store.beforeDiscard.withLock { $0 = { _ in usleep(200) } }
        let latest = LatestPages()
        let stop = TestFlag()
        let outcome = ThreadOutcome()
        let writer = startThread { [device] in
            outcome.run { () throws(ZramError) in
                var rng = SplitMix64(seed: seed)
                var round = 0
                while !stop.isRaised || round < 2 * pages {
                    let page = Int(rng.next() % UInt64(pages))
                    let data = round % 3 == 0 ? DeviceTestPage.noise.bytes(using: &rng) : WritebackData.fioPage(using: &rng)
                    let failure: ZramError? = data.withUnsafeBytes { buffer in
                        do throws(ZramError) { try device.write(buffer, at: UInt64(page * pageSize)) } catch { return error }
                        return nil
                    }
                    if let failure { throw failure }
                    latest.pages.withLock { $0[page] = data }
                    round += 1
                }
            }
        }
        for _ in 0..<40 {
            try device.writeAttribute("idle", "all")
            try device.writeAttribute("writeback", "idle")
        }
        _ = stop.raise()
        writer.join()
        #expect(outcome.failure == nil)
        let model = latest.pages.withLock { $0 }
        for (page, data) in model {
            #expect(try device.read(count: pageSize, at: UInt64(page * pageSize)) == data, "page \(page) (seed \(seed))")
        }
        if layout == "page" { #expect(try Self.writtenBackSlots(device, pages: pages) == Int(device.bd[0])) }
        #expect(device.memoryStatistics.origDataSize == UInt64(model.count * pageSize))
    }

    /// An overwrite frees its written-back block and discards it; a writeback that runs
    /// before the discard ends must not be given that block, or the discard wipes its page.
    @Test(arguments: ["page", "packed"])
    func aWritebackDuringTheDiscardOfAnOverwrittenPageKeepsItsData(layout: String) throws {
        let seed: UInt64 = 77
        let store = TestBackingStore()
        let device = try ZramDevice.makeBacked(by: store, diskSize: 64 * UInt64(pageSize), layout: layout)
        var rng = SplitMix64(seed: seed)
        let (old, other, new) = (WritebackData.fioPage(using: &rng), WritebackData.fioPage(using: &rng), WritebackData.fioPage(using: &rng))
        try device.write(old, at: 0)
        try device.writeAttribute("writeback", "page_index=0")
        try device.write(other, at: UInt64(pageSize))
        #expect(device.bd == [1, 0, 1])

        let discards = HookCalls()
        store.beforeDiscard.withLock { hook in
            hook = { [device] _ in
                guard discards.count.add(1, ordering: .relaxed).newValue == 1 else { return }
                do { try device.writeAttribute("writeback", "page_index=1") } catch {
                    Issue.record("writeback of page 1 during the discard: \(error)")
                }
            }
        }
        try device.write(new, at: 0)  // frees page 0's block: its discard runs page 1's writeback
        store.beforeDiscard.withLock { $0 = nil }

        #expect(discards.count.load(ordering: .relaxed) == 1, "the overwrite discarded the old block")
        #expect(device.bd[2] == 2, "page 1 went to the store during the discard")
        #expect(try device.read(count: pageSize, at: UInt64(pageSize)) == other, "page 1 (seed \(seed))")
        #expect(try device.read(count: pageSize, at: 0) == new, "page 0 (seed \(seed))")
    }

    /// How often a store hook ran.
    final class HookCalls: Sendable {
        let count = Atomic<Int>(0)
    }

    @Test func resetDuringWritebackEndsItWithinABatch() throws {
        let store = TestBackingStore()
        let device = try ZramDevice.makeBacked(by: store, diskSize: 8 << 20)
        var rng = SplitMix64(seed: 12)
        _ = try Self.fill(device, (0..<1024).map { _ in WritebackData.fioPage(using: &rng) })
        try device.writeAttribute("writeback_batch_size", "4")
        store.writeDelayMicroseconds.store(2000, ordering: .relaxed)
        let outcome = ThreadOutcome()
        let writeback = startThread { [device] in
            outcome.run { () throws(ZramError) in try device.writeAttribute("writeback", "page_indexes=0-1023") }
        }
        var waited = 0
        while store.writes == 0 && waited < 10_000 {
            usleep(1000)
            waited += 1
        }
        #expect(store.writes > 0)
        try device.writeAttribute("reset", "1")
        writeback.join()
        #expect(outcome.isFinished)
        #expect(store.writes < 1024 / 4, "the writeback stopped at the reset")
        #expect(store.isClosed)
        #expect(!device.isInitialized)
        try device.setDiskSize(1 << 20)
        #expect(try device.read(count: pageSize, at: 0) == [UInt8](repeating: 0, count: pageSize))
        #expect(throwsKind(.noDevice) { try device.writeAttribute("writeback", "idle") })
    }

    @Test(arguments: [CompressionAlgorithm.lz4, .zstd])
    func realAnonymousMemoryRoundTripsThroughWritebackAndReset(algorithm: CompressionAlgorithm) throws {
        let seed: UInt64 = 2048
        guard let corpus = WritebackData.corpusPages(2048, seed: seed) else { return }
        let store = TestBackingStore()
        let device = try ZramDevice.makeBacked(by: store, algorithm, diskSize: 16 << 20)
        let model = try Self.fill(device, corpus)
        let before = device.memoryStatistics
        try device.writeAttribute("idle", "all")
        try device.writeAttribute("writeback", "huge_idle")
        #expect(device.bd[0] == before.hugePages)
        try Self.verify(device, model, seed: seed, "after huge_idle")
        try device.writeAttribute("writeback", "idle")
        #expect(device.bd[0] == before.hugePages, "the reads cleared every idle mark")
        try device.writeAttribute("idle", "all")
        try device.writeAttribute("writeback", "idle")
        let stored = (before.origDataSize / 4096) - before.samePages
        #expect(device.bd[0] == stored, "every page with an object moved (seed \(seed))")
        #expect(device.memoryStatistics.origDataSize == before.origDataSize)
        #expect(device.memoryStatistics.comprDataSize == 0)
        try Self.verify(device, model, seed: seed, "after idle writeback")
        try device.writeAttribute("reset", "1")
        try device.setDiskSize(16 << 20)
        #expect(try device.read(count: 2048 * pageSize, at: 0).allSatisfy { $0 == 0 }, "reset leaves nothing behind")
    }
}

/// A flag threads share.
final class TestFlag: Sendable {
    private let raised = Atomic<Bool>(false)
    /// Raises it. - Returns: whether this call raised it.
    func raise() -> Bool { !raised.exchange(true, ordering: .acquiringAndReleasing) }
    var isRaised: Bool { raised.load(ordering: .acquiring) }
}

/// The last data a racing writer wrote to each page.
final class LatestPages: Sendable {
    let pages = Mutex<[Int: [UInt8]]>([:])
}

/// `writeback_auto 1`: at mem_limit, writes move pages to the backing store instead
/// of failing; off (the default), the device fails them as the kernel does.
@Suite struct AutomaticWritebackTests {
    static func writeFourTimesTheLimit(_ device: ZramDevice, seed: UInt64) throws -> (model: [[UInt8]], failures: Int) {
        var rng = SplitMix64(seed: seed)
        var model: [[UInt8]] = []
        var failures = 0
        for index in 0..<1024 {
            let page = WritebackData.fioPage(using: &rng)
            do {
                try device.write(page, at: UInt64(index * pageSize))
                model.append(page)
            } catch {
                #expect((error as? ZramError)?.kind == .memoryLimitReached, "\(error)")
                failures += 1
                model.append([UInt8](repeating: 0, count: pageSize))
            }
            #expect(device.memoryStatistics.memUsedTotal <= 1 << 20, "page \(index) (seed \(seed))")
        }
        return (model, failures)
    }

    @Test func offByDefaultTheLimitFailsWritesAsTheKernel() throws {
        let device = try ZramDevice.makeBacked(by: TestBackingStore(), diskSize: 4 << 20, queuePages: 0)
        #expect(try device.readAttribute("writeback_auto") == "0\n")
        try device.writeAttribute("mem_limit", "1M")
        let (model, failures) = try Self.writeFourTimesTheLimit(device, seed: 60)
        #expect(failures > 0)
        #expect(device.bd == [0, 0, 0])
        try WritebackTests.verify(device, model, seed: 60)
    }

    @Test(arguments: [0, ZramDevice.defaultQueuePages])
    func onWritesMovePagesInsteadOfFailing(queuePages: Int) throws {
        let seed: UInt64 = 61
        let store = TestBackingStore()
        let device = try ZramDevice.makeBacked(by: store, diskSize: 4 << 20, queuePages: queuePages)
        try device.writeAttribute("writeback_auto", "1")
        #expect(throwsKind(.invalidArgument) { try device.writeAttribute("writeback_auto", "2") })
        try device.writeAttribute("mem_limit", "1M")
        let (model, failures) = try Self.writeFourTimesTheLimit(device, seed: seed)
        #expect(failures == 0, "seed \(seed)")
        #expect(device.bd[0] > 0)
        #expect(device.memoryStatistics.origDataSize == 1024 * 4096)
        try WritebackTests.verify(device, model, seed: seed)
        #expect(try WritebackTests.writtenBackSlots(device, pages: 1024) == Int(device.bd[0]))
    }

    @Test func theLimitBoundsAutomaticWriteback() throws {
        let device = try ZramDevice.makeBacked(by: TestBackingStore(), diskSize: 4 << 20, queuePages: 0)
        try device.writeAttribute("writeback_auto", "1")
        try device.writeAttribute("writeback_limit_enable", "1")
        try device.writeAttribute("writeback_limit", "40")
        try device.writeAttribute("mem_limit", "1M")
        let (model, failures) = try Self.writeFourTimesTheLimit(device, seed: 62)
        #expect(failures > 0)
        #expect(device.bd[0] == 40)
        try WritebackTests.verify(device, model, seed: 62)
    }
}

/// `writeback_layout packed` (beyond the kernel): objects share blocks, emptied
/// blocks are reclaimed and discarded, and bd_layout_stat reports the saving.
@Suite struct PackedWritebackTests {
    @Test func theLayoutIsChosenBeforeDisksize() throws {
        let device = ZramDevice(name: "zram-wb", streams: 1, backingOpener: { _ in TestBackingStore() })
        #expect(try device.readAttribute("writeback_layout") == "[page] packed\n")
        try device.writeAttribute("writeback_layout", "packed")
        #expect(try device.readAttribute("writeback_layout") == "page [packed]\n")
        #expect(throwsKind(.invalidArgument) { try device.writeAttribute("writeback_layout", "dense") })
        try device.writeAttribute("disksize", "1M")
        #expect(throwsKind(.busy) { try device.writeAttribute("writeback_layout", "page") })
        #expect(try device.readAttribute("bd_layout_stat") == "       0        0        0        0\n")
    }

    @Test(arguments: [CompressionAlgorithm.lz4, .zstd])
    func packedObjectsReadBackSaveBlocksAndFreeEmptiedOnes(algorithm: CompressionAlgorithm) throws {
        let seed: UInt64 = 0xDACE
        let store = TestBackingStore()
        let device = try ZramDevice.makeBacked(by: store, algorithm, layout: "packed")
        var model = try WritebackTests.fill(device, WritebackTests.fioPages(512, seed: seed))
        let moved = UInt64(model.filter { !$0.allSatisfy { $0 == 0 } }.count)
        let compressed = device.memoryStatistics.comprDataSize
        try device.writeAttribute("idle", "all")
        try device.writeAttribute("writeback", "idle")
        let blocks = device.bd[0]
        #expect(device.bd[2] == moved, "bd_writes counts pages (seed \(seed))")
        #expect(blocks <= moved / 2, "60 % compressible pages pack at least two to a block")
        #expect(blocks * 4096 >= compressed)
        let stat = try device.readAttribute("bd_layout_stat").split(separator: " ").compactMap { UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        #expect(stat == [moved, compressed, blocks * 4096, (moved - blocks) * 4096])
        try WritebackTests.verify(device, model, seed: seed, "packed")

        // Overwrite every page: every block empties and is discarded.
        var rng = SplitMix64(seed: seed)
        for index in 0..<512 {
            model[index] = DeviceTestPage.text.bytes(using: &rng)
            try device.write(model[index], at: UInt64(index * pageSize))
            if index == 255 { #expect(device.bd[0] < blocks && device.bd[0] > 0, "half the pages free some blocks") }
        }
        #expect(device.bd[0] == 0)
        #expect(store.discarded == Int(blocks) * 4096, "each emptied block was discarded once")
        try WritebackTests.verify(device, model, seed: seed, "after the overwrites")
        // The reclaimed blocks take new objects.
        try device.writeAttribute("writeback", "page_indexes=0-511")
        #expect(device.bd[0] > 0 && device.bd[0] <= 512)
        try WritebackTests.verify(device, model, seed: seed, "after a second writeback")
    }

    @Test func realAnonymousMemoryPacked() throws {
        let seed: UInt64 = 0xA11
        guard let corpus = WritebackData.corpusPages(2048, seed: seed) else { return }
        let scratch = try BackingScratch()
        defer { scratch.remove() }
        let device = ZramDevice(name: "zram-packed", streams: 2)
        try device.writeAttribute("writeback_layout", "packed")
        try device.writeAttribute("backing_dev", scratch.file("packed.img"))
        try device.writeAttribute("disksize", "16M")
        let model = try WritebackTests.fill(device, corpus)
        try device.writeAttribute("idle", "all")
        try device.writeAttribute("writeback", "idle")
        let stat = try device.readAttribute("bd_layout_stat")
        print("bd_layout_stat on the corpus (objects bytes block_bytes saved_bytes): \(stat)", terminator: "")
        #expect(device.bd[0] < device.bd[2])
        try WritebackTests.verify(device, model, seed: seed, "packed in a file")
    }
}
