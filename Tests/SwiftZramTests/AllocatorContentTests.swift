import Testing

@testable import SwiftZram

extension AllocatorTests {
    @Suite struct Contents {
        @Test func liveObjectsNeverOverlap() throws {
            let pool = ZsPool()
            var random = SplitMix64(seed: 1)
            var live: [StoredObject] = []
            var nextSeed: UInt64 = 1
            func storeSome(_ count: Int) throws {
                for _ in 0..<count {
                    // Mix small, typical and huge sizes so every kind of class is hit.
                    let length =
                        switch Int.random(in: 0..<10, using: &random) {
                        case 0: Int.random(in: 1...64, using: &random)
                        case 1: Int.random(in: ZsPool.hugeThreshold...4096, using: &random)
                        default: Int.random(in: 1...4096, using: &random)
                        }
                    live.append(try #require(pool.storePattern(length: length, seed: nextSeed)))
                    nextSeed += 1
                }
            }
            try storeSome(6000)
            live.shuffle(using: &random)
            for object in live.suffix(3000) { pool.free(object.handle) }
            live.removeLast(3000)
            try storeSome(4000)

            #expect(Set(live.map(\.handle)).count == live.count, "handles are unique")
            let corrupted = live.filter { !pool.holdsPattern($0) }
            #expect(corrupted.isEmpty, "\(corrupted.count) objects lost their content")
            #expect(pool.statistics().reduce(0) { $0 + $1.liveObjects } == live.count)

            for object in live { pool.free(object.handle) }
            #expect(pool.memoryUsed == 0)
            #expect(pool.statistics().allSatisfy { $0.zspages == 0 && $0.liveObjects == 0 })
        }

        @Test func handlesStayValidAcrossCompaction() throws {
            let pool = ZsPool()
            var random = SplitMix64(seed: 2)
            var live: [StoredObject] = []
            for seed in 1...20_000 as ClosedRange<UInt64> {
                let length = random.compressedSize()
                live.append(try #require(pool.storePattern(length: length, seed: seed)))
            }
            // Fragment: keep every fourth object of each class, free the rest.
            var kept: [StoredObject] = []
            for (index, object) in live.enumerated() {
                if index % 4 == 0 { kept.append(object) } else { pool.free(object.handle) }
            }
            let autoCompacted = pool.pagesCompacted
            #expect(autoCompacted > 0, "freeing 3/4 of every class must trigger automatic compaction")
            // Automatic compaction keeps every class near the 1/8 rule.
            for stats in pool.statistics() where !stats.isHuge {
                #expect(stats.freeableZspages * 8 < stats.zspages + 8, "class \(stats.size) left too fragmented")
            }

            let before = pool.memoryUsed
            let freed = pool.compact()
            print("compaction: automatic \(autoCompacted) pages, explicit \(freed) pages, memory \(before) -> \(pool.memoryUsed)")
            #expect(pool.pagesCompacted == autoCompacted + freed)
            #expect(pool.memoryUsed <= before - freed * 4096 + pool.statistics().count * 8 * 4096)
            if freed > 0 { #expect(pool.memoryUsed < before) }
            for stats in pool.statistics() where !stats.isHuge {
                #expect(stats.freeableZspages == 0, "class \(stats.size) still has freeable zspages")
            }
            #expect(pool.memoryUsed == pool.pagesFromStatistics * 4096)

            let corrupted = kept.filter { !pool.holdsPattern($0) }
            #expect(corrupted.isEmpty, "\(corrupted.count) objects lost their content in compaction")
            for object in kept { pool.free(object.handle) }
            #expect(pool.memoryUsed == 0)
        }

        @Test func fullSlotPayloadsPackBackToBackAndSurviveCompaction() throws {
            // Objects have no header: a payload as large as its class fills the
            // slot, and neighbours sit exactly `size` bytes apart. Compaction
            // finds each moved object's owner in the side table.
            let pool = ZsPool()
            var live: [StoredObject] = []
            var seed: UInt64 = 1
            for info in SizeClassTable.classes where !info.isHuge {
                var first: [StoredObject] = []
                for _ in 0..<(3 * info.objectsPerZspage) {
                    let object = try #require(pool.storePattern(length: info.payloadCapacity, seed: seed))
                    seed += 1
                    if first.count < 2 { first.append(object) }
                    live.append(object)
                }
                let a = pool.withObject(first[0].handle, size: 1) { UInt(bitPattern: $0.baseAddress) }
                let b = pool.withObject(first[1].handle, size: 1) { UInt(bitPattern: $0.baseAddress) }
                #expect(b == a + UInt(info.size), "class \(info.size): objects are not back to back")
            }
            var kept: [StoredObject] = []
            for (index, object) in live.enumerated() {
                if index % 3 == 0 { kept.append(object) } else { pool.free(object.handle) }
            }
            pool.compact()
            for stats in pool.statistics() where !stats.isHuge {
                #expect(stats.freeableZspages == 0, "class \(stats.size) still has freeable zspages")
            }
            let corrupted = kept.filter { !pool.holdsPattern($0) }
            #expect(corrupted.isEmpty, "\(corrupted.count) full-slot objects lost their content")
            // Freed slots are reused through the free list in the owner table.
            let half = kept.count / 2
            for object in kept[..<half] { pool.free(object.handle) }
            var survivors = Array(kept[half...])
            for _ in 0..<1000 {
                survivors.append(try #require(pool.storePattern(length: 1000, seed: seed)))
                seed += 1
            }
            #expect(survivors.allSatisfy { pool.holdsPattern($0) })
            for object in survivors { pool.free(object.handle) }
            #expect(pool.memoryUsed == 0)
        }

        @Test func explicitCompactionFreesPagesBelowTheAutomaticThreshold() throws {
            let pool = ZsPool()
            // One class, 40 zspages of 1200-byte objects; free just under 1/8
            // of the objects spread over all zspages: automatic compaction
            // must not fire, explicit compaction must free what it can.
            let info = SizeClassTable.classes.first { $0.payloadCapacity >= 1200 }!
            let count = info.objectsPerZspage * 40
            var live: [StoredObject] = []
            for seed in 1...UInt64(count) { live.append(try #require(pool.storePattern(length: 1200, seed: seed))) }
            let full = pool.memoryUsed
            let step = 9
            var kept: [StoredObject] = []
            for (index, object) in live.enumerated() {
                if index % step == 0 { pool.free(object.handle) } else { kept.append(object) }
            }
            #expect(pool.pagesCompacted == 0, "below 1/8 freeable zspages nothing compacts automatically")
            #expect(pool.memoryUsed == full)
            let freed = pool.compact()
            #expect(freed > 0)
            #expect(pool.pagesCompacted == freed)
            #expect(pool.memoryUsed < full)
            #expect(kept.allSatisfy { pool.holdsPattern($0) })
        }

        @Test func pinnedObjectsDoNotMove() throws {
            let pool = ZsPool()
            let info = SizeClassTable.classes.first { $0.payloadCapacity >= 500 }!
            let perZspage = info.objectsPerZspage
            // Fill exactly two zspages: A (objects 0..<n) then B.
            var objects: [StoredObject] = []
            for seed in 1...UInt64(2 * perZspage) {
                objects.append(try #require(pool.storePattern(length: 500, seed: seed)))
            }
            let survivor = objects[0]
            pool.withObject(survivor.handle, size: survivor.length) { bytes in
                // Empty A but for the pinned survivor, then half of B: one zspage
                // becomes freeable and automatic compaction must drain B, not A.
                for object in objects[1..<perZspage] { pool.free(object.handle) }
                for object in objects[perZspage..<(perZspage + perZspage / 2)] { pool.free(object.handle) }
                pool.compact()
                let now = pool.withObject(survivor.handle, size: 1) { $0.baseAddress }
                #expect(now == bytes.baseAddress, "a pinned object moved")
            }
            #expect(pool.pagesCompacted > 0, "the unpinned zspage should have been drained")
            #expect(pool.statistics()[SizeClassTable.classes.firstIndex(of: info)!].zspages == 1)
            let remaining = [survivor] + objects[(perZspage + perZspage / 2)...]
            #expect(remaining.allSatisfy { pool.holdsPattern($0) })
            for object in remaining { pool.free(object.handle) }
            #expect(pool.memoryUsed == 0)
        }
    }
}
