#if canImport(Glibc)
import Glibc
#endif
import Platform
import Synchronization
import Testing
@testable import SwiftZram

/// Whole-device scans (idle, compact) hold the lifecycle lock one batch at a
/// time. The lock prefers writers, so a scan that held it throughout would
/// make a pending reset, and all I/O queued behind that reset, wait for the
/// whole scan. These tests line a reset up behind a scan's first batch through
/// the scan's own hook, so they need no timing.
@Suite struct DeviceScanTests {
    enum Scan: CaseIterable {
        case markIdle, countIdle, compact
    }

    /// Chunks a scanned device has data in: one batch per chunk below.
    static let chunks = 8

    /// A device with data in every chunk, and for compaction, sparse zspages.
    static func populatedDevice() throws -> ZramDevice {
        let device = try ZramDevice.make(.lz4, diskSize: UInt64(chunks * PageTable.pagesPerChunk * pageSize))
        var rng = SplitMix64(seed: 11)
        for chunk in 0..<chunks {
            for page in 0..<64 {
                let offset = UInt64((chunk * PageTable.pagesPerChunk + page) * pageSize)
                try device.write(DeviceTestPage.text.bytes(using: &rng), at: offset)
            }
        }
        // Free three pages of four: zspages are left a quarter full, for compaction to merge.
        for chunk in 0..<chunks {
            for page in 0..<64 where page % 4 != 0 {
                try device.discard(offset: UInt64((chunk * PageTable.pagesPerChunk + page) * pageSize), length: UInt64(pageSize))
            }
        }
        _ = device.memoryStatistics  // drains the compression queue
        return device
    }

    /// Runs `scan` in batches of one chunk (or one zspage), calling `hook` after each.
    @discardableResult
    static func run(_ scan: Scan, on device: ZramDevice, hook: () -> Void) -> Int {
        var batches = 0
        let counting = {
            batches += 1
            hook()
        }
        switch scan {
        case .markIdle: device.markAllIdle(batchChunks: 1, afterEachBatch: counting)
        case .countIdle: _ = device.countIdlePages(batchChunks: 1, afterEachBatch: counting)
        case .compact: _ = device.compact(batchSteps: 1, afterEachBatch: counting)
        }
        return batches
    }

    /// Waits until `condition` holds. The deadline only keeps a broken build from hanging.
    static func wait(until condition: () -> Bool) -> Bool {
        var start = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        while !condition() {
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            if now.tv_sec - start.tv_sec > 60 { return false }
            sched_yield()
        }
        return true
    }

    @Test(arguments: Scan.allCases)
    func withoutAResetTheScanTakesSeveralBatches(scan: Scan) throws {
        let device = try Self.populatedDevice()
        #expect(Self.run(scan, on: device) {} >= 2)
    }

    /// A reset that arrives during the first batch runs right after it, and the scan stops.
    @Test(arguments: Scan.allCases)
    func aWaitingResetRunsAfterOneBatch(scan: Scan) throws {
        let device = try Self.populatedDevice()
        var reset: PosixThread?
        let outcome = ThreadOutcome()
        let batches = Self.run(scan, on: device) {
            guard reset == nil else { return }
            reset = startThread { outcome.run { () throws(ZramError) in try device.reset() } }
            #expect(Self.wait { device.lifecycle.hasWaitingWriter }, "reset never waited for the lock")
        }
        reset?.join()
        #expect(batches == 1)
        #expect(outcome.isFinished)
        #expect(outcome.failure == nil)
        #expect(!device.isInitialized)
    }

    /// A client has the device open, so the reset fails with EBUSY; I/O queued behind it
    /// completes while the scan goes on, and the scan then finishes.
    @Test(arguments: Scan.allCases)
    func ioQueuedBehindAWaitingResetRunsDuringTheScan(scan: Scan) throws {
        let device = try Self.populatedDevice()
        device.open()
        defer { device.close() }
        var threads: [PosixThread] = []
        let reset = ThreadOutcome()
        let write = ThreadOutcome()
        var doneDuringScan = false
        var batch = 0
        let batches = Self.run(scan, on: device) {
            batch += 1
            if batch == 1 {
                threads.append(startThread { reset.run { () throws(ZramError) in try device.reset() } })
                #expect(Self.wait { device.lifecycle.hasWaitingWriter }, "reset never waited for the lock")
                // Queued behind the reset: the lock prefers writers.
                threads.append(startThread {
                    write.run { () throws(ZramError) in
                        let byte = UnsafeMutableRawBufferPointer.allocate(byteCount: 1, alignment: 1)
                        defer { byte.deallocate() }
                        byte[0] = 0xAB
                        try device.write(UnsafeRawBufferPointer(byte), at: UInt64(pageSize))
                    }
                })
            } else if batch == 2 {
                doneDuringScan = Self.wait { reset.isFinished && write.isFinished }
            }
        }
        for thread in threads { thread.join() }
        #expect(batches >= 2)
        #expect(doneDuringScan, "the write waited for the whole scan")
        #expect(write.failure == nil)
        #expect(reset.failure?.kind == .busy)
        #expect(device.isInitialized)
        #expect(try device.read(count: 1, at: UInt64(pageSize)) == [0xAB])
    }
}
