import Foundation
import Synchronization
import Testing

@testable import SwiftZram

extension AllocatorTests {
    @Suite struct Concurrency {
        /// Runs `body` on `count` real threads at once and waits for all.
        private func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
            let group = DispatchGroup()
            for index in 0..<count {
                group.enter()
                let thread = Thread {
                    body(index)
                    group.leave()
                }
                thread.start()
            }
            group.wait()
        }

        @Test func workersAndCompactorShareThePool() throws {
            let pool = ZsPool()
            let workers = 4
            let operationsPerWorker = 40_000
            let failures = Atomic<Int>(0)
            let workersDone = Atomic<Int>(0)
            let compactions = Atomic<Int>(0)
            let survivors = Mutex<[StoredObject]>([])

            onThreads(workers + 1) { thread in
                if thread == workers {
                    // The compactor: runs until every worker has finished.
                    while workersDone.load(ordering: .acquiring) < workers {
                        compactions.add(1, ordering: .relaxed)
                        pool.compact()
                    }
                    return
                }
                var random = SplitMix64(seed: UInt64(thread) &* 1_000_003 &+ 5)
                var live: [StoredObject] = []
                var nextSeed = UInt64(thread) << 40
                for _ in 0..<operationsPerWorker {
                    switch Int.random(in: 0..<10, using: &random) {
                    case 0..<5:
                        nextSeed += 1
                        let length = random.compressedSize()
                        if let object = pool.storePattern(length: length, seed: nextSeed) {
                            live.append(object)
                        } else {
                            failures.add(1, ordering: .relaxed)
                        }
                    case 5..<7 where !live.isEmpty:
                        let object = live[Int.random(in: 0..<live.count, using: &random)]
                        if !pool.holdsPattern(object) { failures.add(1, ordering: .relaxed) }
                    default:
                        guard !live.isEmpty else { continue }
                        let index = Int.random(in: 0..<live.count, using: &random)
                        live.swapAt(index, live.count - 1)
                        let object = live.removeLast()
                        if !pool.holdsPattern(object) { failures.add(1, ordering: .relaxed) }
                        pool.free(object.handle)
                    }
                }
                survivors.withLock { $0.append(contentsOf: live) }
                workersDone.add(1, ordering: .releasing)
            }

            let live = survivors.withLock { $0 }
            print(
                "concurrency: \(live.count) survivors, \(compactions.load(ordering: .relaxed)) compaction passes, "
                    + "\(pool.pagesCompacted) pages compacted")
            #expect(failures.load(ordering: .relaxed) == 0, "objects corrupted or stores refused")
            #expect(compactions.load(ordering: .relaxed) > 0)
            #expect(live.allSatisfy { pool.holdsPattern($0) })
            #expect(pool.memoryUsed == pool.pagesFromStatistics * 4096)
            #expect(pool.statistics().reduce(0) { $0 + $1.liveObjects } == live.count)
            pool.compact()
            #expect(live.allSatisfy { pool.holdsPattern($0) })
            for object in live { pool.free(object.handle) }
            #expect(pool.memoryUsed == 0)
        }
    }
}
