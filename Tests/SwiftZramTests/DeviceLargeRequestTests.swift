#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing
@testable import SwiftZram

/// Requests large enough to be split between their caller and the request helpers:
/// every byte comes back, an error in one page fails the whole request, counters stay
/// exact, and reset meets large requests from several threads without a hang.
@Suite struct DeviceLargeRequestTests {
    /// Lengths either side of the split threshold, and a megabyte with ragged edges.
    static let lengths = [
        RequestHelpers.minimumBytes - pageSize, RequestHelpers.minimumBytes - 1, RequestHelpers.minimumBytes,
        RequestHelpers.minimumBytes + 1, 1 << 20, (1 << 20) + 4096 + 100,
    ]

    /// Bytes that look like memory: a mix of every kind of test page.
    static func data(count: Int, seed: UInt64) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count + pageSize)
        while bytes.count < count {
            let kind = DeviceTestPage.allCases[Int(rng.next() % UInt64(DeviceTestPage.allCases.count))]
            bytes += kind.bytes(using: &rng)
        }
        return Array(bytes[..<count])
    }

    /// A store with `helpers` request helpers (more than the streams, to make them contend).
    static func store(pages: Int, helpers: Int = 3, queuePages: Int = 64) throws -> ZramStore {
        try ZramStore(
            diskSize: UInt64(pages * pageSize), compression: CompressionParameters(algorithm: .lz4), streams: 2,
            counters: DeviceCounters(), queuePages: queuePages, helperThreads: helpers)
    }

    static func write(_ store: ZramStore, _ bytes: [UInt8], at offset: Int) throws {
        try bytes.withUnsafeBytes { try store.write($0, at: UInt64(offset)) }
    }

    static func read(_ store: ZramStore, count: Int, at offset: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0xEE, count: count)
        try out.withUnsafeMutableBytes { try store.read(into: $0, at: UInt64(offset)) }
        return out
    }

    @Test(arguments: lengths, [0, 4096, 1000])
    func largeRequestsReadBackEveryByte(length: Int, offset: Int) throws {
        let seed = 0x1A26E &+ UInt64(length) &* 31 &+ UInt64(offset)
        let store = try Self.store(pages: 1024)
        defer { store.shutdown() }
        #expect(store.helpers != nil)
        let data = Self.data(count: length, seed: seed)
        try Self.write(store, data, at: offset)
        // Read while pages may still be queued, then again once all are compressed.
        #expect(try Self.read(store, count: length, at: offset) == data, "seed \(seed)")
        store.drain()
        #expect(try Self.read(store, count: length, at: offset) == data, "seed \(seed)")
        // The bytes around the request were never written.
        if offset > 0 { #expect(try Self.read(store, count: offset, at: 0) == [UInt8](repeating: 0, count: offset)) }
        #expect(try Self.read(store, count: 8192, at: offset + length) == [UInt8](repeating: 0, count: 8192))
        // A large read that starts and ends inside pages.
        let inner = try Self.read(store, count: length - 200, at: offset + 100)
        #expect(inner[...] == data[100..<(length - 100)], "seed \(seed)")
    }

    @Test func defaultHelpersLeaveOneCPUAndOneStreamToTheCaller() {
        let cpus = sysconf(Int32(_SC_NPROCESSORS_ONLN))
        #expect(ZramStore.defaultHelperThreads(streams: 64) == max(0, min(63, cpus - 1)))
        #expect(ZramStore.defaultHelperThreads(streams: 1) == 0)
    }

    /// A large read is shared with the helpers only when its caller allows it; an
    /// unsplit one still reads back every byte.
    @Test func onlySplittableReadsUseTheHelpers() throws {
        let seed: UInt64 = 0x5B117
        let store = try Self.store(pages: 512)
        defer { store.shutdown() }
        let helpers = try #require(store.helpers)
        let data = Self.data(count: 1 << 20, seed: seed)
        try Self.write(store, data, at: 0)
        store.drain()
        var out = [UInt8](repeating: 0xEE, count: data.count)
        try out.withUnsafeMutableBytes { try store.read(into: $0, at: 0, splittable: false) }
        #expect(out == data, "seed \(seed)")
        #expect(helpers.jobsPosted == 0)
        #expect(try Self.read(store, count: data.count, at: 0) == data, "seed \(seed)")
        #expect(helpers.jobsPosted == 1)
    }

    @Test func largeRequestsThroughTheDevicesDefaults() throws {
        let seed: UInt64 = 0xD1CE
        let device = try ZramDevice.make(diskSize: 8 << 20)
        let data = Self.data(count: 3 << 20, seed: seed)
        try device.write(data, at: 4096)
        #expect(try device.read(count: data.count, at: 4096) == data, "seed \(seed)")
    }

    /// Damages the compressed object of page `index` (noise over its bytes).
    static func damage(_ store: ZramStore, page index: Int, seed: UInt64) throws {
        store.drain()
        let slot = try #require(store.table.existingSlot(index))
        let state = slot.lock()
        defer { slot.unlock(setting: state) }
        try #require(state.hasObject && !state.isHuge, "page \(index) is not a compressed object")
        store.pool.withObject(ObjectHandle(rawValue: slot.pointee.payload), size: state.objectSize) { object in
            var rng = SplitMix64(seed: seed)
            let bytes = UnsafeMutableRawBufferPointer(mutating: object)
            for byte in bytes.indices { bytes[byte] = UInt8(truncatingIfNeeded: rng.next()) }
        }
    }

    /// With helpers the read is cut into chunks; without, one thread holds several pages
    /// ahead of the damaged one locked and pinned (read-ahead), and must let them all go.
    @Test(arguments: [0, 37, 254, 255], [0, 3])
    func aDamagedPageFailsTheWholeLargeRead(page: Int, helpers: Int) throws {
        let seed: UInt64 = 0xBAD0 &+ UInt64(page)
        let store = try Self.store(pages: 512, helpers: helpers)
        defer { store.shutdown() }
        var rng = SplitMix64(seed: seed)
        var data: [UInt8] = []
        for _ in 0..<256 { data += DeviceTestPage.text.bytes(using: &rng) }
        try Self.write(store, data, at: 0)
        try Self.damage(store, page: page, seed: seed)

        for _ in 0..<3 {
            #expect(
                "seed \(seed)", performing: { _ = try Self.read(store, count: 1 << 20, at: 0) },
                throws: { ($0 as? ZramError)?.kind == .ioError })
        }
        #expect(store.counters.failedReads.load(ordering: .relaxed) == 3, "only the damaged page fails")
        #expect(store.counters.pagesRead.load(ordering: .relaxed) == 0, "a failed read is not counted as read")
        // The helpers are free again, and the pages around the damaged one read back.
        let before = Array(data[..<(page * pageSize)])
        let after = Array(data[((page + 1) * pageSize)...])
        #expect(try Self.read(store, count: before.count, at: 0) == before, "seed \(seed)")
        #expect(try Self.read(store, count: after.count, at: (page + 1) * pageSize) == after, "seed \(seed)")
        // No page stayed pinned: every zspage empties and is freed (a pinned one would trap).
        _ = store.pool.compact()
        try store.zeroRange(offset: 0, length: store.diskSize, keepAllocated: false)
        #expect(store.pool.memoryUsed == 0)
    }

    @Test func aLostPageFailsTheWholeLargeRead() throws {
        let store = try ZramStore(
            diskSize: UInt64(512 * pageSize), compression: CompressionParameters(algorithm: .lz4), streams: 2,
            counters: DeviceCounters(), queuePages: 256, helperThreads: 3,
            refusals: MemoryRefusals(CompressorWorker.memoryRetries))
        defer { store.shutdown() }
        let data = Self.data(count: 1 << 20, seed: 0x1057)
        try Self.write(store, data, at: 0)
        store.drain()
        #expect(store.counters.failedWrites.load(ordering: .relaxed) == 1, "the first queued page is lost")
        #expect(
            performing: { _ = try Self.read(store, count: 1 << 20, at: 0) },
            throws: { ($0 as? ZramError)?.kind == .ioError })
    }

    /// A page of `index` at `version`: both stamped in its first 16 bytes, text-like after.
    static func versionedPage(_ index: Int, version: UInt64) -> [UInt8] {
        var rng = SplitMix64(seed: UInt64(index) &* 0x9E37 &+ version)
        var page = DeviceTestPage.text.bytes(using: &rng)
        withUnsafeBytes(of: UInt64(index)) { page.replaceSubrange(0..<8, with: $0) }
        withUnsafeBytes(of: version) { page.replaceSubrange(8..<16, with: $0) }
        return page
    }

    /// Readers that lock several pages ahead, single-page writers and
    /// compaction all at once, without request helpers: nothing deadlocks, and every page a
    /// reader sees is a whole version of that page.
    @Test func readAheadMeetsOverwritesAndCompaction() throws {
        let pages = 256
        let store = try Self.store(pages: pages, helpers: 0, queuePages: 16)
        defer { store.shutdown() }
        for index in 0..<pages { try Self.write(store, Self.versionedPage(index, version: 0), at: index * pageSize) }
        let torn = Atomic<Int>(0)
        let failures = Atomic<Int>(0)
        let done = Atomic<Int>(0)
        let readers = (0..<2).map { _ in
            startThread {
                var buffer = [UInt8](repeating: 0, count: pages * pageSize)
                for round in 0..<40 {
                    // Whole device, or ragged edges inside the first and last pages.
                    let (offset, length) = round % 2 == 0 ? (0, pages * pageSize) : (100, pages * pageSize - 200)
                    do {
                        try buffer.withUnsafeMutableBytes {
                            try store.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[offset..<(offset + length)]), at: UInt64(offset))
                        }
                    } catch {
                        failures.add(1, ordering: .relaxed)
                        continue
                    }
                    for index in 1..<(pages - 1) {
                        let page = buffer[(index * pageSize)..<((index + 1) * pageSize)]
                        let version = page.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self) }
                        if Array(page) != Self.versionedPage(index, version: version) { torn.add(1, ordering: .relaxed) }
                    }
                }
                done.add(1, ordering: .relaxed)
            }
        }
        let writers = (0..<2).map { writer in
            startThread {
                var rng = SplitMix64(seed: 0x7EAD &+ UInt64(writer))
                for step in 1...3000 {
                    let index = Int(rng.next() % UInt64(pages))
                    let page = Self.versionedPage(index, version: UInt64(step * 2 + writer))
                    do { try Self.write(store, page, at: index * pageSize) } catch { failures.add(1, ordering: .relaxed) }
                    if step % 500 == 0 { _ = store.pool.compact() }
                }
                done.add(1, ordering: .relaxed)
            }
        }
        // A deadlock fails here instead of hanging the run (bounded: 120 s).
        for _ in 0..<12_000 where done.load(ordering: .relaxed) < 4 { usleep(10_000) }
        #expect(done.load(ordering: .relaxed) == 4, "readers or writers are stuck (deadlock)")
        guard done.load(ordering: .relaxed) == 4 else { return }
        for thread in readers + writers { thread.join() }
        #expect(failures.load(ordering: .relaxed) == 0)
        #expect(torn.load(ordering: .relaxed) == 0, "seeds 0x7EAD, 0x7EAE")
    }

    /// Several threads write and read large requests while another resets and
    /// re-initialises the device: nothing hangs or crashes, and every request either
    /// succeeds or fails with ENXIO (no disksize at that moment).
    @Test func resetMeetsLargeRequestsFromSeveralThreads() throws {
        let device = try ZramDevice.make(diskSize: 8 << 20)
        let data = Self.data(count: 1 << 20, seed: 0x5E7)
        let wrongErrors = Atomic<Int>(0)
        let mismatches = Atomic<Int>(0)
        let threads = (0..<3).map { worker in
            startThread {
                var buffer = [UInt8](repeating: 0, count: 1 << 20)
                let offset = UInt64(worker) << 21
                for _ in 0..<40 {
                    do {
                        try data.withUnsafeBytes { try device.write($0, at: offset) }
                        try buffer.withUnsafeMutableBytes { try device.read(into: $0, at: offset) }
                        // A reset between the write and the read leaves zeros; anything else is wrong.
                        if buffer != data && buffer.contains(where: { $0 != 0 }) { mismatches.add(1, ordering: .relaxed) }
                    } catch let error as ZramError where error.kind == .notInitialized {
                    } catch {
                        wrongErrors.add(1, ordering: .relaxed)
                    }
                }
            }
        }
        for _ in 0..<20 {
            try device.reset()
            try device.setDiskSize(8 << 20)
        }
        for thread in threads { thread.join() }
        #expect(wrongErrors.load(ordering: .relaxed) == 0)
        #expect(mismatches.load(ordering: .relaxed) == 0)
        try device.reset()
    }

    /// After large writes and reads, counters match what was stored, once drained.
    @Test func countersAreExactAfterLargeRequests() throws {
        let seed: UInt64 = 0xC0C0
        let device = try ZramDevice.make(diskSize: 8 << 20)
        var rng = SplitMix64(seed: seed)
        var data: [UInt8] = []
        var samePages = 0
        for index in 0..<512 {
            let kind: DeviceTestPage = index % 4 == 0 ? .sameWord : .text
            if kind == .sameWord { samePages += 1 }
            data += kind.bytes(using: &rng)
        }
        try device.write(data, at: 0)  // 512 pages
        try device.write(Array(data[..<(1 << 20)]), at: 0)  // 256 of them again, over stored objects
        #expect(try device.read(count: data.count, at: 0) == data, "seed \(seed)")
        let memory = device.memoryStatistics  // drains
        #expect(memory.origDataSize == UInt64(512 * pageSize))
        #expect(memory.samePages == UInt64(samePages))
        let io = device.ioStatistics
        #expect(io.pagesWritten == 768)
        #expect(io.pagesRead == 512)
        #expect(io.failedReads == 0 && io.failedWrites == 0)
        try device.discard(offset: 0, length: 8 << 20)
        #expect(device.memoryStatistics.origDataSize == 0)
        try device.withInitializedStore { store throws(ZramError) in
            #expect(store.pool.memoryUsed == 0, "a replaced object was leaked")
        }
    }
}
