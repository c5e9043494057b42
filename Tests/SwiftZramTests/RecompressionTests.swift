import Foundation
import Platform
import Synchronization
import Testing
@testable import SwiftZram

/// `recomp_algorithm`, `algorithm_params priority=`, and `recompress` with zram's rules,
/// on real anonymous memory and fio-like 60 %-compressible pages, each checked byte for byte.
@Suite struct RecompressionTests {
    static let seed: UInt64 = 0x5EC0_11D5

    /// A device filled with corpus pages (0..<corpusCount), 60 % pages, low-entropy pages that
    /// lz4 stores huge, and noise; returns what each page holds.
    static func filled(
        _ device: ZramDevice, corpusCount: Int = 96, sixtyCount: Int = 32, lowEntropyCount: Int = 16,
        noiseCount: Int = 8, seed: UInt64 = RecompressionTests.seed
    ) throws -> [[UInt8]] {
        var rng = SplitMix64(seed: seed)
        var pages = try AnonymousMemoryCorpus.pages(corpusCount, seed: seed)
        pages += (0..<sixtyCount).map { _ in ShapedPage.sixtyPercentCompressible(&rng) }
        pages += (0..<lowEntropyCount).map { _ in ShapedPage.lowEntropy(&rng) }
        pages += (0..<noiseCount).map { _ in ShapedPage.noise(&rng) }
        for (index, page) in pages.enumerated() { try device.write(page, at: UInt64(index * pageSize)) }
        return pages
    }

    static func expectReadBack(_ device: ZramDevice, _ pages: [[UInt8]], seed: UInt64 = RecompressionTests.seed) throws {
        for (index, page) in pages.enumerated() {
            let whole = try device.read(count: pageSize, at: UInt64(index * pageSize))
            let firstDifference = whole.indices.first { whole[$0] != page[$0] }
            #expect(firstDifference == nil, "seed \(seed): page \(index) differs from byte \(firstDifference ?? 0)")
            let part = try device.read(count: 1000, at: UInt64(index * pageSize + 3000))
            #expect(part.elementsEqual(page[3000..<4000]), "seed \(seed): bytes 3000..<4000 of page \(index) differ")
        }
    }

    @Test(arguments: ["idle", "huge", "huge_idle", ""])
    func everyTypeRecompressesOnlyItsPagesAndReadsBackByteForByte(type: String) throws {
        let device = try ZramDevice.makeRecompressing(.lz4, secondaries: [(.zstd, 3)])
        let pages = try Self.filled(device)
        // Idle: every other page.
        try device.writeAttribute("idle", "all")
        for index in stride(from: 1, to: pages.count, by: 2) { _ = try device.read(count: pageSize, at: UInt64(index * pageSize)) }
        let before = try (0..<pages.count).map { try device.pageState($0) }
        let stat = device.memoryStatistics
        #expect(stat.hugePages >= 24, "seed \(Self.seed): low-entropy and noise pages are huge under lz4")

        try device.writeAttribute("recompress", type.isEmpty ? "" : "type=\(type)")
        let after = try (0..<pages.count).map { try device.pageState($0) }
        for index in pages.indices {
            let wanted = (type.hasSuffix("idle") ? before[index].isIdle : true) && (type.hasPrefix("huge") ? before[index].isHuge : true)
            if !wanted {
                #expect(after[index].priority == 0 && !after[index].isIncompressible, "seed \(Self.seed): page \(index) is not a \(type) page")
                #expect(after[index].isIdle == before[index].isIdle)
            } else {
                // Tried: either smaller now (priority 1) or marked incompressible; never idle after.
                #expect(after[index].priority == 1 || after[index].isIncompressible, "page \(index)")
                #expect(!after[index].isIdle, "page \(index): recompressing clears the idle mark")
                if after[index].priority == 1 {
                    #expect(device.pool(sizeClassOf: after[index].objectSize) < device.pool(sizeClassOf: before[index].objectSize))
                    #expect(!after[index].isHuge)
                }
            }
            #expect(after[index].accessTime == before[index].accessTime, "recompression is no access")
        }
        #expect(after.contains { $0.priority == 1 }, "seed \(Self.seed): zstd beats lz4 on some \(type) pages")
        if type.hasPrefix("huge") {
            #expect(device.memoryStatistics.hugePages < stat.hugePages, "low-entropy pages leave the huge class")
            #expect(device.memoryStatistics.hugePagesSince == stat.hugePagesSince)
        }
        #expect(device.memoryStatistics.comprDataSize < stat.comprDataSize)
        try device.expectCountersExact("seed \(Self.seed) type \(type)")
        try Self.expectReadBack(device, pages)
        let (recompressed, saved) = device.recompressionStatistics
        #expect(recompressed == UInt64(after.filter { $0.priority == 1 }.count))
        #expect(saved == stat.comprDataSize - device.memoryStatistics.comprDataSize)
    }

    @Test func partialWritesAndReadsOfRecompressedPagesUseTheirPrioritysAlgorithm() throws {
        let device = try ZramDevice.makeRecompressing(.lzo, secondaries: [(.lz4hc, nil), (.zstd, 3)])
        var pages = try Self.filled(device, corpusCount: 32, sixtyCount: 8, lowEntropyCount: 8, noiseCount: 0)
        try device.recompress(RecompressionRequest(parsing: "priority=1 max_pages=16"))
        try device.recompress(RecompressionRequest(parsing: "priority=2"))
        let priorities = try (0..<pages.count).map { try device.pageState($0).priority }
        #expect(priorities.contains(1) && priorities.contains(2), "seed \(Self.seed): \(priorities)")
        var rng = SplitMix64(seed: Self.seed ^ 0x77)
        for index in pages.indices where priorities[index] != 0 {
            let offset = Int(rng.next() % 4000)
            let patch = (0..<64).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            try device.write(patch, at: UInt64(index * pageSize + offset))
            pages[index].replaceSubrange(offset..<(offset + 64), with: patch)
            #expect(try device.pageState(index).priority == 0, "a rewritten page is the primary's again")
        }
        try Self.expectReadBack(device, pages)
        try device.expectCountersExact("partial writes")
    }

    @Test func aRecompressionAlgorithmTakesItsOwnDictionary() throws {
        let scratch = try DeviceDictionaryFileTests.Scratch()
        defer { scratch.remove() }
        let path = scratch.file("dict")
        #expect(FileManager.default.createFile(atPath: path, contents: Data(CompressionDictionaryTests.dictionary)))
        let device = ZramDevice(name: "zram-recomp-dict", streams: 2, queuePages: 0)
        try device.writeAttribute("recomp_algorithm", "algo=zstd priority=1")
        try device.writeAttribute("algorithm_params", "algo=zstd level=3 dict=\(path)")
        #expect(device.recompressionParameters[0]?.dictionary == CompressionDictionaryTests.dictionary)
        #expect(device.compressionParameters.dictionary == nil, "the primary's parameters are untouched")
        try device.setDiskSize(4 << 20)
        let pages = try Self.filled(device, corpusCount: 48, sixtyCount: 8, lowEntropyCount: 8, noiseCount: 0)
        #expect(try device.recompress(RecompressionRequest()).recompressed > 0)
        try Self.expectReadBack(device, pages)
    }

    @Test func thresholdSkipsSmallObjectsAndResultsMustGoBelowIt() throws {
        let device = try ZramDevice.makeRecompressing(.lz4, secondaries: [(.zstd, 3)])
        let pages = try Self.filled(device)
        let before = try (0..<pages.count).map { try device.pageState($0) }
        let threshold = 1500
        let report = try device.recompress(RecompressionRequest(parsing: "threshold=\(threshold)"))
        let after = try (0..<pages.count).map { try device.pageState($0) }
        let eligible = before.filter { $0.hasObject && $0.objectSize >= threshold }.count
        #expect(report.attempted == UInt64(eligible), "seed \(Self.seed): only objects of \(threshold) bytes or more count")
        for index in pages.indices {
            if before[index].objectSize < threshold {
                #expect(after[index] == before[index], "page \(index) under the threshold is untouched")
            } else if after[index].priority == 1 {
                #expect(after[index].objectSize < threshold, "page \(index): a result must be under the threshold")
            }
        }
        try Self.expectReadBack(device, pages)
        try device.expectCountersExact("threshold")
        #expect(kind { try device.writeAttribute("recompress", "threshold=\(ZsPool.hugeThreshold + 1)") } == .invalidArgument)
        #expect(kind { try device.writeAttribute("recompress", "threshold=\(ZsPool.hugeThreshold)") } == nil)
    }

    @Test func maxPagesCountsAttemptsAndTakesTheLargestObjectsFirst() throws {
        let device = try ZramDevice.makeRecompressing(.lz4, secondaries: [(.zstd, 3)])
        let pages = try Self.filled(device)
        let before = try (0..<pages.count).map { try device.pageState($0) }
        let report = try device.recompress(RecompressionRequest(parsing: "max_pages=20"))
        #expect(report.attempted == 20)
        let after = try (0..<pages.count).map { try device.pageState($0) }
        let tried = pages.indices.filter { after[$0].priority == 1 || after[$0].isIncompressible }
        #expect(tried.count == 20)
        let smallestTriedBucket = tried.map { before[$0].objectSize / 64 }.min()!
        let largestUntriedBucket = pages.indices.filter { !tried.contains($0) && before[$0].hasObject }.map { before[$0].objectSize / 64 }.max()!
        #expect(smallestTriedBucket >= largestUntriedBucket, "seed \(Self.seed): candidates go largest first, by 64-byte buckets")
        for index in pages.indices { #expect(!after[index].isPostProcessing, "page \(index) keeps no recompression mark") }
        #expect(try device.recompress(RecompressionRequest(parsing: "max_pages=0")).attempted == 0)
        try Self.expectReadBack(device, pages)
    }

    @Test func aResultInTheSameSizeClassIsNoProgressAndTheHighestFailureMarksIncompressible() throws {
        // lz4 again as the secondary compresses to the same size: never a smaller class.
        let device = try ZramDevice.makeRecompressing(.lz4, secondaries: [(.lz4, nil)])
        let pages = try Self.filled(device, corpusCount: 32, sixtyCount: 8, lowEntropyCount: 4, noiseCount: 4)
        let before = try (0..<pages.count).map { try device.pageState($0) }
        let report = try device.recompress(RecompressionRequest())
        let objects = before.filter(\.hasObject).count
        #expect(report.attempted == UInt64(objects) && report.recompressed == 0)
        for index in pages.indices where before[index].hasObject {
            let state = try device.pageState(index)
            #expect(state.isIncompressible && state.priority == 0 && state.objectSize == before[index].objectSize)
        }
        #expect(try device.recompress(RecompressionRequest()).attempted == 0, "incompressible pages are skipped from then on")
        // A write makes the page new: the mark goes.
        try device.write(pages[0], at: 0)
        #expect(try !device.pageState(0).isIncompressible)
        try Self.expectReadBack(device, pages)
    }

    @Test func priorityAndAlgoPinOneAlgorithmAndOnlyTheHighestMarksIncompressible() throws {
        let device = try ZramDevice.makeRecompressing(.lz4, secondaries: [(.lz4, nil), (.zstd, 5)])
        #expect(try device.readAttribute("recomp_algorithm") == "#1: lzo [lz4] lz4hc zstd \n#2: lzo lz4 lz4hc [zstd] \n")
        let pages = try Self.filled(device, corpusCount: 48, sixtyCount: 8, lowEntropyCount: 8, noiseCount: 4)
        // Priority 1 (lz4 again) fails everywhere, but it is not the highest: no page is marked.
        let first = try device.recompress(RecompressionRequest(parsing: "priority=1"))
        #expect(first.attempted > 0 && first.recompressed == 0)
        #expect(try (0..<pages.count).allSatisfy { try !device.pageState($0).isIncompressible })
        // algo=zstd pins priority 2.
        let second = try device.recompress(RecompressionRequest(parsing: "algo=zstd max_pages=10"))
        #expect(second.attempted == 10 && second.recompressed > 0)
        #expect(try (0..<pages.count).allSatisfy { try [0, 2].contains(device.pageState($0).priority) })
        // Pages at priority 2 are done: nothing higher exists.
        let rest = try device.recompress(RecompressionRequest())
        let states = try (0..<pages.count).map { try device.pageState($0) }
        #expect(rest.attempted + second.attempted == UInt64(states.filter(\.hasObject).count))
        #expect(states.allSatisfy { !$0.hasObject || $0.priority == 2 || $0.isIncompressible })
        try Self.expectReadBack(device, pages)
        try device.expectCountersExact("priorities")
        // priority=0 means priority 1, as the kernel.
        #expect(kind { try device.writeAttribute("recompress", "priority=0") } == nil)
        #expect(kind { try device.writeAttribute("recompress", "priority=3") } == .invalidArgument)
        #expect(kind { try device.writeAttribute("recompress", "algo=lz4hc") } == .invalidArgument)
    }

    @Test func attributeErrorsMatchTheKernel() throws {
        let device = ZramDevice(name: "zram-recomp-errors", streams: 1, queuePages: 0)
        #expect(try device.readAttribute("recomp_algorithm") == "")
        #expect(kind { try device.writeAttribute("recomp_algorithm", "priority=1") } == .invalidArgument)
        #expect(kind { try device.writeAttribute("recomp_algorithm", "algo=zstd priority=0") } == .invalidArgument)
        #expect(kind { try device.writeAttribute("recomp_algorithm", "algo=zstd priority=4") } == .invalidArgument)
        #expect(kind { try device.writeAttribute("recomp_algorithm", "algo=brotli") } == .invalidArgument)
        #expect(kind { try device.writeAttribute("algorithm_params", "priority=1 level=3") } == .invalidArgument, "no algorithm at 1")
        #expect(kind { try device.writeAttribute("recompress", "type=idle") } == .invalidArgument)
        try device.writeAttribute("recomp_algorithm", "algo=zstd")
        try device.writeAttribute("recomp_algorithm", "algo=lz4hc priority=3")
        try device.writeAttribute("algorithm_params", "algo=lz4hc level=12")
        try device.writeAttribute("algorithm_params", "priority=1 level=7")
        #expect(kind { try device.writeAttribute("algorithm_params", "priority=1 level=99") } == .invalidArgument)
        #expect(kind { try device.writeAttribute("algorithm_params", "algo=lzo level=1") } == .invalidArgument, "lzo is not configured")
        #expect(device.recompressionParameters.map { $0?.level } == [7, nil, 12])
        #expect(device.recompressionParameters.map { $0?.algorithm } == [.zstd, nil, .lz4hc])
        try device.writeAttribute("algorithm_params", "level=1")  // the primary's, as before
        #expect(device.compressionParameters.level == 1)
        try device.writeAttribute("disksize", "1M")
        #expect(try device.readAttribute("recomp_algorithm") == "#1: lzo lz4 lz4hc [zstd] \n#3: lzo lz4 [lz4hc] zstd \n")
        #expect(kind { try device.writeAttribute("recomp_algorithm", "algo=lzo priority=2") } == .busy)
        #expect(kind { try device.writeAttribute("algorithm_params", "priority=1 level=3") } == .busy)
        for junk in ["type=cold", "threshold=-1", "max_pages=x", "level=3", "type", "type=", "priority=x"] {
            #expect(kind { try device.writeAttribute("recompress", junk) } == .invalidArgument, "'\(junk)'")
        }
        device.postProcessing.store(true, ordering: .relaxed)
        #expect(kind { try device.writeAttribute("recompress", "type=idle") } == .tryAgain)
        device.postProcessing.store(false, ordering: .relaxed)
        try device.writeAttribute("recompress", "type=idle")
        try device.reset()
        #expect(try device.readAttribute("recomp_algorithm") == "", "reset forgets the recompression algorithms")
        try device.writeAttribute("disksize", "1M")
        #expect(kind { try device.writeAttribute("recompress", "") } == .invalidArgument, "no recompression algorithm")
    }

    @Test func aPageWrittenWhileItsCopyIsRecompressedKeepsTheNewData() throws {
        let device = try ZramDevice.makeRecompressing(.lz4, secondaries: [(.zstd, 3)])
        var pages = try Self.filled(device, corpusCount: 64, sixtyCount: 16, lowEntropyCount: 8, noiseCount: 0)
        var rng = SplitMix64(seed: Self.seed ^ 0xFF)
        let replacements = (0..<pages.count).map { _ in ShapedPage.sixtyPercentCompressible(&rng) }
        let overwritten = Mutex<Set<Int>>([])
        let report = try device.recompress(RecompressionRequest(), afterEachBatch: {}) { index in
            // Every third page is written between its new copy being made and installed.
            guard index % 3 == 0 else { return }
            do { try device.write(replacements[index], at: UInt64(index * pageSize)) } catch { Issue.record("\(error)") }
            overwritten.withLock { _ = $0.insert(index) }
        }
        #expect(report.attempted > 0)
        for index in overwritten.withLock({ $0 }) {
            pages[index] = replacements[index]
            #expect(try device.pageState(index).priority == 0, "page \(index): the write won")
        }
        try Self.expectReadBack(device, pages)
        try device.expectCountersExact("racing writes")
    }

    @Test func writersOnOtherThreadsRaceARecompressionAndTheirDataWins() throws {
        let device = try ZramDevice.makeRecompressing(.lz4, secondaries: [(.zstd, 3)])
        var pages = try Self.filled(device, corpusCount: 128, sixtyCount: 32, lowEntropyCount: 16, noiseCount: 0)
        let count = pages.count
        let seed = Self.seed ^ 0xABC
        var rng = SplitMix64(seed: seed)
        // A fixed sequence of writes; the last write to each page is what it must hold.
        let writes = (0..<600).map { _ in (Int(rng.next() % UInt64(count)), ShapedPage.sixtyPercentCompressible(&rng)) }
        let outcome = ThreadOutcome()
        let writer = startThread {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: pageSize, alignment: 16)
            defer { buffer.deallocate() }
            outcome.run { () throws(ZramError) in
                for (index, page) in writes {
                    buffer.copyBytes(from: page)
                    try device.write(UnsafeRawBufferPointer(buffer), at: UInt64(index * pageSize))
                }
            }
        }
        for _ in 0..<3 { _ = try device.recompress(RecompressionRequest()) }
        writer.join()
        #expect(outcome.failure == nil)
        for (index, page) in writes { pages[index] = page }
        try Self.expectReadBack(device, pages, seed: seed)
        try device.expectCountersExact("seed \(seed): racing threads")
    }

    @Test func aResetDuringRecompressionEndsItWithoutHanging() throws {
        let device = try ZramDevice.makeRecompressing(.lz4, secondaries: [(.zstd, 3)], diskSize: 16 << 20)
        _ = try Self.filled(device, corpusCount: 512, sixtyCount: 64, lowEntropyCount: 16, noiseCount: 0)
        let resetter = Mutex<PosixThreadBox?>(nil)
        let batches = Atomic<Int>(0)
        let report = try device.recompress(RecompressionRequest(), afterEachBatch: {
            // After the scan and one batch of work, a reset comes in and waits for the batch.
            // The batch returns only once the reset waits for the lock, so the run must stop there.
            if batches.add(1, ordering: .relaxed).newValue == 3 {
                resetter.withLock { $0 = PosixThreadBox(startThread { try? device.reset() }) }
                #expect(DeviceScanTests.wait { device.lifecycle.hasWaitingWriter }, "reset never waited for the lock")
            }
        })
        resetter.withLock { $0?.thread.join() }
        #expect(!device.isInitialized)
        #expect(report.attempted < 592, "the run stopped at the reset")
        let stillRunning = device.postProcessing.load(ordering: .relaxed)
        #expect(!stillRunning)
        try device.setDiskSize(1 << 20)
        #expect(device.memoryStatistics.origDataSize == 0)
    }

    func kind(_ body: () throws -> Void) -> ZramError.Kind? {
        do { try body() } catch let error as ZramError { return error.kind } catch { return nil }
        return nil
    }
}

/// Carries a thread handle out of a Mutex.
struct PosixThreadBox: @unchecked Sendable {
    // @unchecked: joined once, by the test thread, after the batch that made it.
    let thread: PosixThread
    init(_ thread: PosixThread) { self.thread = thread }
}

extension ZramDevice {
    func pool(sizeClassOf size: Int) -> Int {
        (try? withInitializedStore { store in store.pool.sizeClass(forPayload: size) }) ?? -1
    }
}

typealias RecompressionRequest = ZramDevice.RecompressionRequest
