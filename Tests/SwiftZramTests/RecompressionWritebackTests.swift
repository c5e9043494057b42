import Testing
@testable import SwiftZram

/// Recompression and writeback on one device: recompressed pages write back and read
/// back through their priority's algorithm; written-back pages are never idle-marked or
/// recompressed.
@Suite struct RecompressionWritebackTests {
    static let seed: UInt64 = 0xB0C4_5EED

    @Test func recompressedPagesWriteBackReadBackAndAreNotRecompressedAgain() throws {
        let store = TestBackingStore()
        let device = ZramDevice(name: "zram-rw", streams: 2, queuePages: 0, backingOpener: { _ in store })
        try device.setAlgorithm(.lz4)
        try device.writeAttribute("recomp_algorithm", "algo=zstd priority=1")
        try device.writeAttribute("backing_dev", store.name)
        try device.setDiskSize(4 << 20)
        let pages = try RecompressionTests.filled(device, corpusCount: 64, sixtyCount: 16, lowEntropyCount: 8, noiseCount: 4, seed: Self.seed)
        let first = try device.recompress(RecompressionRequest())
        #expect(first.recompressed > 0, "seed \(Self.seed)")
        let recompressed = try (0..<pages.count).filter { try device.pageState($0).priority == 1 }

        try device.writeAttribute("idle", "all")
        try device.writeAttribute("writeback", "idle")
        let states = try (0..<pages.count).map { try device.pageState($0) }
        #expect(recompressed.allSatisfy { states[$0].isWrittenBack }, "seed \(Self.seed): every stored page went to the backing store")
        #expect(recompressed.allSatisfy { states[$0].priority == 1 }, "a written-back page keeps its priority")

        try device.writeAttribute("idle", "all")
        #expect(device.idlePages == 0, "written-back pages are never marked idle")
        let again = try device.recompress(RecompressionRequest())
        #expect(again.attempted == 0, "written-back pages are not recompressed")
        try RecompressionTests.expectReadBack(device, pages, seed: Self.seed)
    }

    @Test func writebackAndRecompressionExcludeEachOther() throws {
        let store = TestBackingStore()
        let device = ZramDevice(name: "zram-rw", streams: 2, queuePages: 0, backingOpener: { _ in store })
        try device.writeAttribute("recomp_algorithm", "algo=zstd")
        try device.writeAttribute("backing_dev", store.name)
        try device.setDiskSize(1 << 20)
        device.postProcessing.store(true, ordering: .relaxed)
        #expect(kind { try device.writeAttribute("recompress", "type=huge") } == .tryAgain)
        #expect(kind { try device.writeAttribute("writeback", "huge") } == .tryAgain)
        device.postProcessing.store(false, ordering: .relaxed)
    }

    func kind(_ body: () throws -> Void) -> ZramError.Kind? {
        do { try body() } catch let error as ZramError { return error.kind } catch { return nil }
        return nil
    }
}
