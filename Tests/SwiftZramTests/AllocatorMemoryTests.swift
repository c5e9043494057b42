#if canImport(Glibc)
import Glibc
#endif
import Testing

@testable import SwiftZram

extension AllocatorTests {
    @Suite struct Memory {
        @Test func emptyPoolHoldsNothing() {
            let pool = ZsPool()
            #expect(pool.memoryUsed == 0)
            #expect(pool.pagesCompacted == 0)
            #expect(pool.arena.reservedBytes == 0, "an empty pool reserves no address space")
            #expect(pool.statistics().count == SizeClassTable.classes.count)
        }

        @Test func memoryUsedMatchesPagesHeldAndReturnsToZero() throws {
            let pool = ZsPool()
            var random = SplitMix64(seed: 3)
            var live: [StoredObject] = []
            for seed in 1...5000 as ClosedRange<UInt64> {
                live.append(try #require(pool.storePattern(length: random.compressedSize(), seed: seed)))
                if seed % 500 == 0 { #expect(pool.memoryUsed == pool.pagesFromStatistics * 4096) }
            }
            for stats in pool.statistics() {
                #expect(stats.pagesHeld <= stats.zspages * stats.pagesPerZspage)
                #expect(stats.liveObjects <= stats.zspages * stats.objectsPerZspage)
                // Resident pages cover at least the bytes of the live objects.
                #expect(stats.pagesHeld * 4096 >= stats.liveObjects * stats.size)
            }
            live.shuffle(using: &random)
            for (index, object) in live.enumerated() {
                pool.free(object.handle)
                if index % 500 == 0 { #expect(pool.memoryUsed == pool.pagesFromStatistics * 4096) }
            }
            #expect(pool.memoryUsed == 0)
            #expect(pool.pagesFromStatistics == 0)
        }

        /// Residency is measured on the pool's own mappings (`mincore`), so suites
        /// running beside this one cannot disturb it.
        @Test func freedMemoryLeavesTheProcess() throws {
            let pool = ZsPool()
            var handles: [ObjectHandle] = []
            let payload = UnsafeMutableRawBufferPointer.allocate(byteCount: 3000, alignment: 16)
            defer { payload.deallocate() }
            fillPattern(payload, seed: 42)
            for _ in 0..<60_000 { handles.append(try #require(pool.store(UnsafeRawBufferPointer(payload)))) }
            let held = pool.memoryUsed / 4096
            let residentFull = pool.arena.residentPages() ?? -1
            for handle in handles { pool.free(handle) }
            let residentAfter = pool.arena.residentPages() ?? -1
            print("pool pages: held \(held), resident \(residentFull), resident after free \(residentAfter)")
            #expect(held >= 60_000 * 3000 / 4096)
            #expect(residentFull >= held, "every page the pool counts is resident")
            #expect(residentAfter == 0, "freed pages left the process")
            #expect(pool.memoryUsed == 0)
        }

        @Test func deinitReturnsEverythingToTheOS() throws {
            var ledger: MappingLedger?
            var held = 0
            do {
                let pool = ZsPool()
                let payload = UnsafeMutableRawBufferPointer.allocate(byteCount: 2000, alignment: 16)
                defer { payload.deallocate() }
                fillPattern(payload, seed: 9)
                // Objects left live on purpose: deinit must still unmap them.
                for _ in 0..<40_000 { _ = try #require(pool.store(UnsafeRawBufferPointer(payload))) }
                held = pool.memoryUsed / 4096
                ledger = pool.arena.ledger
                let mapped = pool.arena.ledger.mappedBytes
                let reserved = pool.arena.reservedBytes
                let resident = pool.arena.residentPages() ?? -1
                #expect(mapped == reserved)
                #expect(resident >= held)
            }
            print("deinit: pool held \(held) pages; still mapped after deinit: \(ledger?.mappedBytes ?? -1) bytes")
            #expect(held >= 40_000 * 2000 / 4096)
            #expect(ledger?.mappedBytes == 0, "the pool's mappings outlived it")
        }

        @Test func overheadOnRealisticSizesIsAtMost2Point5Percent() throws {
            let pool = ZsPool()
            var random = SplitMix64(seed: 4)
            var payloadBytes = 0
            var handles: [ObjectHandle] = []
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
            defer { buffer.deallocate() }
            fillPattern(buffer, seed: 7)
            for _ in 0..<120_000 {
                var length = random.compressedSize()
                // The device stores incompressible pages raw, and zram counts them as 4096.
                if length > ZsPool.hugeThreshold { length = 4096 }
                handles.append(try #require(pool.store(UnsafeRawBufferPointer(rebasing: buffer[..<length]))))
                payloadBytes += length
            }
            let ratio = Double(pool.memoryUsed) / Double(payloadBytes)
            print("overhead: memoryUsed \(pool.memoryUsed) / payload \(payloadBytes) = \(ratio)")
            #expect(ratio <= 1.025)
            #expect(ratio >= 1.0)
            for handle in handles { pool.free(handle) }
            #expect(pool.memoryUsed == 0)
        }

        @Test func discardFallsBackWhenPagesAreLocked() throws {
            let arena = PageArena()
            let acquired = arena.acquireSlot(pages: 8)
            let slot = try #require(acquired?.address)
            let length = 8 * 4096
            memset(slot, 0xA5, length)
            OSMemory.relockOnFault(slot, length)
            var vector = [UInt8](repeating: 0, count: 8)
            #expect(mincore(slot, length, &vector) == 0)
            let lockedResident = vector.filter { $0 & 1 != 0 }.count
            // Locked pages refuse madvise(DONTNEED) with EINVAL: that is the case under test.
            let probe = madvise(slot, 4096, MADV_DONTNEED) == -1 && errno == EINVAL
            #expect(probe, "mlock2(MLOCK_ONFAULT) should make madvise fail (is RLIMIT_MEMLOCK too low?)")
            arena.releaseSlot(slot, pages: 8, residentPages: 8)
            #expect(mincore(slot, length, &vector) == 0)
            #expect(lockedResident == 8)
            #expect(vector.allSatisfy { $0 & 1 == 0 }, "discarded pages must not stay resident")
            #expect(slot.load(fromByteOffset: 4096 * 3, as: UInt8.self) == 0, "discarded pages read as zeros")
            _ = munlock(slot, length)
        }
    }
}
