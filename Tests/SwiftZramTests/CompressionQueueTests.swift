#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Platform
import Testing
@testable import SwiftZram

/// The compression queue on its own: a full ring, stopping with pages in flight,
/// and the compressor's out-of-memory path. The compressor is held at a gate
/// (its start hook) so the tests decide when it runs.
@Suite struct CompressionQueueTests {
    /// Holds the compressor thread in its start hook until opened.
    final class Gate: Sendable {
        private let opened = Atomic<Bool>(false)

        func open() { opened.store(true, ordering: .releasing) }

        func wait() {
            while !opened.load(ordering: .acquiring) { usleep(100) }
        }
    }

    static let queuePages = 8

    /// A store whose compressor waits at `gate`; the gate opens on every exit of `body`.
    static func withStore(
        pages: Int = 64, refusals: MemoryRefusals? = nil, _ body: (ZramStore, Gate) throws -> Void
    ) throws {
        let gate = Gate()
        defer { gate.open() }
        let store = try ZramStore(
            diskSize: UInt64(pages * pageSize), compression: CompressionParameters(algorithm: .lz4), streams: 2,
            counters: DeviceCounters(), queuePages: queuePages, workerStart: { gate.wait() }, refusals: refusals)
        try body(store, gate)
        gate.open()
        store.shutdown()
    }

    static func page(_ index: Int) -> [UInt8] {
        var rng = SplitMix64(seed: 0xC0FFEE &+ UInt64(index))
        return DeviceTestPage.text.bytes(using: &rng)
    }

    static func write(_ store: ZramStore, _ index: Int, _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try store.write($0, at: UInt64(index * pageSize)) }
    }

    static func read(_ store: ZramStore, _ index: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0xEE, count: pageSize)
        try out.withUnsafeMutableBytes { try store.read(into: $0, at: UInt64(index * pageSize)) }
        return out
    }

    static func isQueued(_ store: ZramStore, _ index: Int) -> Bool {
        store.table.existingSlot(index)?.unlockedState.isQueued ?? false
    }

    /// Counters that must agree with what the table holds.
    static func expectExactCounters(_ store: ZramStore, stored: Int, queued: Int = 0) {
        #expect(store.counters.storedPages.load(ordering: .relaxed) == stored)
        #expect(store.counters.queuedPages.load(ordering: .relaxed) == queued)
        var held = 0
        var page = 0
        while let chunk = store.table.nextChunk(atOrAfter: page) {
            for offset in 0..<PageTable.pagesPerChunk where (chunk.slots + offset).unlockedState.isStored { held += 1 }
            page = chunk.firstPage + PageTable.pagesPerChunk
        }
        #expect(held == stored)
    }

    @Test func aFullRingSendsWritersInline() throws {
        try Self.withStore { store, gate in
            let pages = 3 * Self.queuePages
            for index in 0..<pages { try Self.write(store, index, Self.page(index)) }
            // The compressor has not run: the first pages wait in the ring, the rest were compressed inline.
            #expect((0..<pages).filter { Self.isQueued(store, $0) } == Array(0..<Self.queuePages))
            Self.expectExactCounters(store, stored: pages, queued: Self.queuePages)
            #expect(store.memoryUsed == store.pool.memoryUsed + Self.queuePages * pageSize)
            for index in 0..<pages { #expect(try Self.read(store, index) == Self.page(index), "page \(index)") }
            gate.open()
            store.drain()
            Self.expectExactCounters(store, stored: pages)
            for index in 0..<pages { #expect(try Self.read(store, index) == Self.page(index), "page \(index)") }
        }
    }

    /// A caller with more requests waiting compresses its small writes itself, even with
    /// room in the ring; a longer write, or one without a backlog, is still queued.
    @Test func backloggedSmallWritesAreCompressedInline() throws {
        try Self.withStore { store, gate in
            let limitPages = ZramStore.backloggedInlineLimit / pageSize
            let small = (0..<limitPages).flatMap { Self.page($0) }
            try small.withUnsafeBytes { try store.write($0, at: 0, backlogged: true) }
            #expect((0..<limitPages).filter { Self.isQueued(store, $0) } == [])
            let long = (0..<(limitPages + 1)).flatMap { Self.page(100 + $0) }
            let longStart = limitPages
            try long.withUnsafeBytes { try store.write($0, at: UInt64(longStart * pageSize), backlogged: true) }
            #expect((longStart..<(2 * limitPages + 1)).allSatisfy { Self.isQueued(store, $0) })
            let last = 2 * limitPages + 1
            try Self.write(store, last, Self.page(200))
            #expect(Self.isQueued(store, last))
            Self.expectExactCounters(store, stored: last + 1, queued: limitPages + 2)
            for index in 0..<limitPages { #expect(try Self.read(store, index) == Self.page(index), "page \(index)") }
            gate.open()
            store.drain()
            Self.expectExactCounters(store, stored: last + 1)
            for index in 0...limitPages {
                #expect(try Self.read(store, longStart + index) == Self.page(100 + index), "page \(longStart + index)")
            }
            #expect(try Self.read(store, last) == Self.page(200))
        }
    }

    /// Queued writes replace stored objects, some queued pages are overwritten again inline,
    /// and the queue is stopped with all of it in flight: every page reads back its last
    /// write, counters are exact, and every replaced object is freed.
    @Test func stoppingWithPagesInFlightLosesAndLeaksNothing() throws {
        try Self.withStore { store, gate in
            let pages = Self.queuePages
            // With a mem_limit set, writes bypass the queue: these become stored objects.
            store.counters.memLimit.store(1 << 30, ordering: .relaxed)
            for index in 0..<pages { try Self.write(store, index, Self.page(index)) }
            store.counters.memLimit.store(0, ordering: .relaxed)
            // Queued over those objects: the compressor is to free them.
            for index in 0..<pages { try Self.write(store, index, Self.page(index + 100)) }
            // The ring is full: these go inline over queued pages.
            for index in 0..<(pages / 2) { try Self.write(store, index, Self.page(index + 200)) }
            Self.expectExactCounters(store, stored: pages, queued: pages / 2)
            store.queue?.stop()
            gate.open()
            store.shutdown()
            Self.expectExactCounters(store, stored: pages)
            for index in 0..<pages {
                let last = index < pages / 2 ? index + 200 : index + 100
                #expect(try Self.read(store, index) == Self.page(last), "page \(index)")
            }
            try store.zeroRange(offset: 0, length: store.diskSize, keepAllocated: false)
            Self.expectExactCounters(store, stored: 0)
            #expect(store.pool.memoryUsed == 0, "a replaced object was leaked")
            #expect(store.counters.comprDataSize.load(ordering: .relaxed) == 0)
        }
    }

    /// Writers and the compressor on the same pages at once: the last write wins, counters are exact.
    @Test func concurrentOverwritesThroughTheQueueStayExact() throws {
        let gate = Gate()
        gate.open()
        let pages = 32
        let store = try ZramStore(
            diskSize: UInt64(pages * pageSize), compression: CompressionParameters(algorithm: .lz4), streams: 2,
            counters: DeviceCounters(), queuePages: Self.queuePages)
        let failures = Atomic<Int>(0)
        let writers = try (0..<3).map { writer in
            try PosixThread.spawn(name: "queue-writer-\(writer)") {
                for round in 0..<200 {
                    let index = (round * 7 + writer) % pages
                    // Writer w owns pages ≡ w (mod 3), so each page's last write is known.
                    guard index % 3 == writer else { continue }
                    do { try Self.write(store, index, Self.page(index * 1000 + round)) } catch {
                        failures.add(1, ordering: .relaxed)
                    }
                }
            }
        }
        for writer in writers { writer.join() }
        store.drain()
        #expect(failures.load(ordering: .relaxed) == 0)
        var lastRound = [Int?](repeating: nil, count: pages)
        for writer in 0..<3 {
            for round in 0..<200 where ((round * 7 + writer) % pages) % 3 == writer {
                lastRound[(round * 7 + writer) % pages] = round
            }
        }
        let written = lastRound.compactMap { $0 }.count
        Self.expectExactCounters(store, stored: written)
        for index in 0..<pages {
            let expected = lastRound[index].map { Self.page(index * 1000 + $0) } ?? [UInt8](repeating: 0, count: pageSize)
            #expect(try Self.read(store, index) == expected, "page \(index)")
        }
        try store.zeroRange(offset: 0, length: store.diskSize, keepAllocated: false)
        #expect(store.pool.memoryUsed == 0)
        store.shutdown()
    }

    @Test func aRefusedStoreIsRetried() throws {
        try Self.withStore(refusals: MemoryRefusals(2)) { store, gate in
            try Self.write(store, 0, Self.page(0))
            gate.open()
            store.drain()
            Self.expectExactCounters(store, stored: 1)
            #expect(try Self.read(store, 0) == Self.page(0))
            #expect(store.counters.failedWrites.load(ordering: .relaxed) == 0)
        }
    }

    /// A page the system keeps refusing memory for is given up after bounded retries:
    /// reading it fails with EIO (never zeros), and the ring moves on.
    @Test func aPageRefusedForGoodIsLostLoudly() throws {
        let refusals = MemoryRefusals(Int.max)
        try Self.withStore(refusals: refusals) { store, gate in
            try Self.write(store, 0, Self.page(0))
            try Self.write(store, 1, Self.page(1))
            gate.open()
            store.drain()
            Self.expectExactCounters(store, stored: 0)
            #expect(store.counters.failedWrites.load(ordering: .relaxed) == 2)
            #expect(performing: { _ = try Self.read(store, 0) }, throws: { ($0 as? ZramError)?.kind == .ioError })
            #expect(store.counters.failedReads.load(ordering: .relaxed) == 1)
            var status: PageAllocation?
            store.blockStatus(offset: 0, length: UInt64(pageSize)) { _, allocation in
                status = allocation
                return false
            }
            #expect(status == .data)
            // Written again, the page is whole again.
            refusals.set(0)
            try Self.write(store, 0, Self.page(7))
            store.drain()
            #expect(try Self.read(store, 0) == Self.page(7))
            Self.expectExactCounters(store, stored: 1)
        }
    }

    /// Stopping does not wait out the retries: reset of a device out of memory cannot hang.
    @Test func stoppingGivesUpRefusedPagesAtOnce() throws {
        try Self.withStore(refusals: MemoryRefusals(Int.max)) { store, gate in
            for index in 0..<Self.queuePages { try Self.write(store, index, Self.page(index)) }
            store.queue?.stop()
            gate.open()
            store.shutdown()
            Self.expectExactCounters(store, stored: 0)
            #expect(store.counters.failedWrites.load(ordering: .relaxed) == Self.queuePages)
            #expect(store.pool.memoryUsed == 0)
        }
    }
}
