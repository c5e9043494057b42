import Foundation
import Testing
@testable import SwiftZram

/// Real anonymous memory for tests: pages of the corpus `scripts/capture-anon-corpus.sh`
/// captures (`ZRAM_CORPUS`, default `/tmp/znbd-anon.bin`, captured here if missing).
enum AnonymousMemoryCorpus {
    static let path = ProcessInfo.processInfo.environment["ZRAM_CORPUS"] ?? "/tmp/znbd-anon.bin"

    /// `count` pages that are not same-filled, from corpus places a seeded generator picks.
    static func pages(_ count: Int, seed: UInt64) throws -> [[UInt8]] {
        try ensureCaptured()
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        let total = Int(try handle.seekToEnd()) / pageSize
        #expect(total > count, "corpus \(path) has only \(total) pages")
        var rng = SplitMix64(seed: seed)
        var result: [[UInt8]] = []
        var tries = 0
        while result.count < count && tries < count * 20 {
            tries += 1
            let index = Int(rng.next() % UInt64(total))
            try handle.seek(toOffset: UInt64(index * pageSize))
            guard let data = try handle.read(upToCount: pageSize), data.count == pageSize else { continue }
            let page = [UInt8](data)
            if isSameFilled(page) { continue }
            result.append(page)
        }
        return result
    }

    static func isSameFilled(_ page: [UInt8]) -> Bool {
        page.withUnsafeBytes { raw in
            let words = raw.assumingMemoryBound(to: UInt64.self)
            return words.allSatisfy { $0 == words[0] }
        }
    }

    /// Captures the corpus if it is missing, once per test process. The script serialises
    /// concurrent captures and renames the file into place once complete.
    static func ensureCaptured() throws { try captured.get() }

    private static let captured = Result<Void, ZramError> { () throws(ZramError) in
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/capture-anon-corpus.sh")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [script.path, "--if-missing", path]
        do { try process.run() } catch { throw ZramError(.ioError, "cannot run \(script.path): \(error)") }
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw ZramError(.ioError, "cannot capture the corpus with \(script.path)")
        }
    }
}

/// Synthetic pages with a known shape.
enum ShapedPage {
    /// fio's `buffer_compress_percentage=60`: in every 512-byte chunk, 40 % random bytes, then zeros.
    static func sixtyPercentCompressible(_ rng: inout SplitMix64) -> [UInt8] {
        var page = [UInt8](repeating: 0, count: pageSize)
        for chunk in stride(from: 0, to: pageSize, by: 512) {
            for i in chunk..<(chunk + 205) { page[i] = UInt8(truncatingIfNeeded: rng.next()) }
        }
        return page
    }

    /// Bytes from a 16-symbol alphabet: no repeats for LZ77 to find (lz4 stores it huge), but
    /// 4 bits of entropy per byte, which zstd's entropy coder halves.
    static func lowEntropy(_ rng: inout SplitMix64) -> [UInt8] {
        (0..<pageSize).map { _ in UInt8(truncatingIfNeeded: rng.next() % 16) &* 17 }
    }

    static func noise(_ rng: inout SplitMix64) -> [UInt8] {
        (0..<pageSize).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    }
}

extension ZramDevice {
    /// A device with `primary` and recompression algorithms by priority, initialised.
    static func makeRecompressing(
        _ primary: CompressionAlgorithm = .lz4, secondaries: [(CompressionAlgorithm, Int?)],
        diskSize: UInt64 = 8 << 20, queuePages: Int = 0, clock: AccessClock? = nil
    ) throws -> ZramDevice {
        let device = ZramDevice(name: "zram-recompress", streams: 2, queuePages: queuePages, manualClock: clock)
        try device.setAlgorithm(primary)
        for (offset, (algorithm, level)) in secondaries.enumerated() {
            try device.setRecompressionAlgorithm(algorithm, priority: offset + 1)
            if let level { try device.setRecompressionParameters(priority: offset + 1, level: level, dictionary: nil) }
        }
        try device.setDiskSize(diskSize)
        return device
    }

    /// Page `index`'s state, without the lock bit.
    func pageState(_ index: Int) throws -> PageState {
        try withInitializedStore { store in store.table.existingSlot(index)?.unlockedState ?? .empty }
    }

    /// mm_stat's content counters recounted from the table: (stored pages, compressed bytes, huge pages).
    func recount() throws -> (stored: Int, compressed: Int, huge: Int) {
        try withInitializedStore { store in
            store.drain()
            var result = (stored: 0, compressed: 0, huge: 0)
            for index in 0..<store.table.pageCount {
                guard let state = store.table.existingSlot(index)?.unlockedState, state.isStored else { continue }
                result.stored += 1
                if state.hasObject {
                    result.compressed += state.objectSize
                    if state.isHuge { result.huge += 1 }
                }
            }
            return result
        }
    }

    /// Expects mm_stat's counters to agree with the table.
    func expectCountersExact(_ note: Comment, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let counted = try recount()
        let stat = memoryStatistics
        #expect(stat.origDataSize == UInt64(counted.stored * pageSize), note, sourceLocation: sourceLocation)
        #expect(stat.comprDataSize == UInt64(counted.compressed), note, sourceLocation: sourceLocation)
        #expect(stat.hugePages == UInt64(counted.huge), note, sourceLocation: sourceLocation)
    }
}
