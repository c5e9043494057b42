import Testing
@testable import SwiftZram

/// `idle all` and `idle SECONDS` (zram's CONFIG_ZRAM_TRACK_ENTRY_ACTIME), on a manual
/// clock: no test here sleeps.
@Suite struct IdleAgeTests {
    static let seed: UInt64 = 0x1D1E_A6E5

    @Test func idleAllSkipsSameFilledAndEmptyPagesAndAccessClearsTheMark() throws {
        let device = try ZramDevice.makeRecompressing(secondaries: [])
        var rng = SplitMix64(seed: Self.seed)
        let pages = try AnonymousMemoryCorpus.pages(4, seed: Self.seed)
        for (index, page) in pages.enumerated() { try device.write(page, at: UInt64(index * pageSize)) }
        try device.write([UInt8](repeating: 0, count: pageSize), at: UInt64(4 * pageSize))
        try device.write([UInt8](repeating: 7, count: pageSize), at: UInt64(5 * pageSize))
        try device.write(ShapedPage.noise(&rng), at: UInt64(6 * pageSize))
        try device.writeAttribute("idle", "all")
        #expect(device.idlePages == 5, "seed \(Self.seed): four corpus pages and one huge page, no same-filled ones")
        #expect(try device.pageState(4).isIdle == false)
        #expect(try device.pageState(5).isIdle == false)
        #expect(try device.pageState(7).isIdle == false)

        _ = try device.read(count: pageSize, at: 0)
        _ = try device.read(count: 100, at: UInt64(pageSize) + 10)
        try device.write(ShapedPage.sixtyPercentCompressible(&rng), at: UInt64(2 * pageSize))
        #expect(device.idlePages == 2)
        #expect(try device.pageState(3).isIdle && device.pageState(6).isIdle)
        #expect(try device.readAttribute("idle") == "2\n")
    }

    @Test func idleWithAnAgeMarksOnlyPagesNotAccessedSinceAndClearsTheOthers() throws {
        let clock = AccessClock(manual: true)
        let device = try ZramDevice.makeRecompressing(secondaries: [], clock: clock)
        let pages = try AnonymousMemoryCorpus.pages(3, seed: Self.seed)
        try device.write(pages[0], at: 0)  // accessed at 0 s
        clock.advance(bySeconds: 100)
        try device.write(pages[1], at: UInt64(pageSize))  // at 100 s
        clock.advance(bySeconds: 50)
        try device.write(pages[2], at: UInt64(2 * pageSize))  // at 150 s
        #expect(try device.pageState(1).accessTime == 100)

        try device.writeAttribute("idle", "120")  // cutoff 30 s: page 0 only
        #expect(try [0, 1, 2].map { try device.pageState($0).isIdle } == [true, false, false])
        try device.writeAttribute("idle", "30")  // cutoff 120 s: pages 0 and 1
        #expect(try [0, 1, 2].map { try device.pageState($0).isIdle } == [true, true, false])

        clock.advance(bySeconds: 10)  // now 160 s
        _ = try device.read(count: pageSize, at: 0)  // page 0 accessed at 160 s
        #expect(try device.pageState(0).isIdle == false)
        try device.writeAttribute("idle", "all")
        try device.writeAttribute("idle", "20")  // cutoff 140 s: an age clears what it does not mark, as zram
        #expect(try [0, 1, 2].map { try device.pageState($0).isIdle } == [false, true, false])
        try device.writeAttribute("idle", "0x0")  // cutoff 160 s: all but page 0, accessed this second
        #expect(try [0, 1, 2].map { try device.pageState($0).isIdle } == [false, true, true])
        try device.writeAttribute("idle", "1000")  // older than the device: nothing
        #expect(device.idlePages == 0)
    }

    @Test func queuedPagesKeepTheirAccessTimeAndIdleMarkThroughTheCompressor() throws {
        let clock = AccessClock(manual: true)
        let device = try ZramDevice.makeRecompressing(secondaries: [], queuePages: 64, clock: clock)
        clock.advance(bySeconds: 7)
        let pages = try AnonymousMemoryCorpus.pages(16, seed: Self.seed ^ 1)
        for (index, page) in pages.enumerated() { try device.write(page, at: UInt64(index * pageSize)) }
        try device.writeAttribute("idle", "all")
        _ = device.memoryStatistics  // drains the queue
        for index in 0..<16 {
            let state = try device.pageState(index)
            #expect(state.hasObject && state.isIdle && state.accessTime == 7, "page \(index)")
        }
    }

    @Test func idleRejectsJunkAndNeedsAnInitialisedDevice() throws {
        let device = ZramDevice(name: "zram-idle", streams: 1, queuePages: 0)
        for junk in ["some", "-1", "1.5", "", "4294967296"] {
            #expect(kind { try device.writeAttribute("idle", junk) } == .invalidArgument, "'\(junk)'")
        }
        #expect(kind { try device.writeAttribute("idle", "60") } == .invalidArgument)
    }

    private func kind(_ body: () throws -> Void) -> ZramError.Kind? {
        do { try body() } catch let error as ZramError { return error.kind } catch { return nil }
        return nil
    }
}
