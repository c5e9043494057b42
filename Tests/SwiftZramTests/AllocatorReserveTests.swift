#if canImport(Glibc)
import Glibc
#endif
import Testing

@testable import SwiftZram

/// The pool's reserve of already-faulted zspage memory (`ReservePolicy`): the request
/// path makes no memory system call and takes no page fault in steady state, and the
/// maintenance pass refills and gives back with hysteresis. Maintenance runs on the
/// test's own thread (`maintainReserve()`), so every step is deterministic.
extension AllocatorTests {
    @Suite struct Reserve {
        /// A small policy: refill below 16 pages of a length, give back above 64, both to 40.
        static let policy = ReservePolicy(lowPages: 16, highPages: 64)
        /// Payloads above the huge threshold go to the huge class: one 1-page zspage each.
        static let hugePayload = 4096

        /// Minor page faults of the calling thread so far.
        static func threadMinorFaults() -> Int {
            var usage = rusage()
            // RUSAGE_THREAD (1) needs _GNU_SOURCE, which Glibc's Swift module leaves out.
            let thread = __rusage_who_t(1)
            #expect(getrusage(thread, &usage) == 0)
            return usage.ru_minflt
        }

        @Test func anUnusedPoolKeepsNoReserve() {
            let pool = ZsPool(reserve: Self.policy)
            #expect(pool.maintainReserve() == (0, 0), "no zspage length is in use yet")
            #expect(pool.reservePages == 0)
            #expect(pool.arena.reservedBytes == 0)
        }

        @Test func refillStartsBelowTheLowMarkAndStopsAtTheTarget() throws {
            let pool = ZsPool(reserve: Self.policy)
            let page = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.hugePayload, alignment: 16)
            defer { page.deallocate() }
            fillPattern(page, seed: 21)
            var handles: [ObjectHandle] = []
            // The first zspage of a length finds no reserve: it falls back to a fresh slot.
            handles.append(try #require(pool.store(UnsafeRawBufferPointer(page))))
            #expect(pool.arena.counters.unreservedSlots.load(ordering: .relaxed) == 1)
            #expect(pool.maintainReserve() == (40, 0), "refilled to the target")
            #expect(pool.arena.readyPages(length: 1) == 40)
            #expect(pool.maintainReserve() == (0, 0), "at the target: nothing to do")
            // Down to the low mark (16 pages left) is still no reason to refill...
            for _ in 0..<24 { handles.append(try #require(pool.store(UnsafeRawBufferPointer(page)))) }
            #expect(pool.arena.readyPages(length: 1) == 16)
            #expect(pool.maintainReserve() == (0, 0), "at the low mark: no refill yet")
            // ...one page below it is.
            handles.append(try #require(pool.store(UnsafeRawBufferPointer(page))))
            #expect(pool.maintainReserve() == (25, 0))
            #expect(pool.arena.readyPages(length: 1) == 40)
            // mem_used_total counts the stored pages only, not the reserve.
            #expect(pool.memoryUsed == handles.count * 4096)
            #expect(pool.memoryUsed == pool.pagesFromStatistics * 4096)
            #expect(pool.reservePages == 40)
            #expect(pool.arena.counters.unreservedSlots.load(ordering: .relaxed) == 1, "every later zspage came from the reserve")
            #expect(pool.arena.counters.requestPathDiscards.load(ordering: .relaxed) == 0)
            #expect(pool.arena.counters.requestPathMappings.load(ordering: .relaxed) == 1, "only the first, unreserved, zspage mapped a chunk")
            for handle in handles { pool.free(handle) }
        }

        @Test func giveBackStartsAboveTheHighMarkAndStopsAtTheTarget() throws {
            let pool = ZsPool(reserve: Self.policy)
            let page = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.hugePayload, alignment: 16)
            defer { page.deallocate() }
            fillPattern(page, seed: 22)
            var handles: [ObjectHandle] = []
            for _ in 0..<100 {
                handles.append(try #require(pool.store(UnsafeRawBufferPointer(page))))
                pool.maintainReserve()
            }
            let calls = pool.arena.counters.requestPathSystemCalls
            let ready = pool.arena.readyPages(length: 1)
            #expect(ready >= Self.policy.lowPages && ready <= Self.policy.highPages)
            // Frees put the slots back as they are, up to the high mark: no give-back.
            let upToHigh = Self.policy.highPages - ready
            for handle in handles.prefix(upToHigh) { pool.free(handle) }
            #expect(pool.arena.readyPages(length: 1) == Self.policy.highPages)
            #expect(pool.maintainReserve() == (0, 0), "at the high mark: nothing given back yet")
            // One more is above it: back to the target.
            pool.free(handles[upToHigh])
            #expect(pool.maintainReserve() == (0, Self.policy.highPages + 1 - 40))
            #expect(pool.arena.readyPages(length: 1) == 40)
            for handle in handles.dropFirst(upToHigh + 1) { pool.free(handle) }
            #expect(pool.arena.counters.requestPathSystemCalls == calls, "frees made no system call")
            pool.maintainReserve()
            #expect(pool.memoryUsed == 0)
            #expect(pool.reservePages == 40)
            // What the pool still holds in memory is its reserve, and nothing else.
            #expect(pool.arena.residentPages() == 40, "freed pages beyond the reserve left the process")
        }

        /// A zspage that started without the reserve has only its touched pages resident;
        /// freeing it leaves the slot for maintenance, which completes it into the reserve.
        @Test func partlyResidentSlotsWaitForMaintenance() throws {
            let pool = ZsPool(reserve: Self.policy)
            let eightPages = try #require(SizeClassTable.classes.first { $0.pagesPerZspage == 8 && !$0.isHuge })
            let object = try #require(pool.storePattern(length: eightPages.size, seed: 5))
            #expect(pool.arena.counters.unreservedSlots.load(ordering: .relaxed) == 1)
            #expect(pool.memoryUsed == 4096, "one object touches one page")
            pool.free(object.handle)
            #expect(pool.reservePages == 1, "the touched page waits for maintenance")
            #expect(pool.arena.counters.requestPathDiscards.load(ordering: .relaxed) == 0)
            // Completed (7 pages) into the reserve, which then refills to the target (40 → 5 slots).
            #expect(pool.maintainReserve() == (7 + 4 * 8, 0))
            #expect(pool.arena.readyPages(length: 8) == 40)
            #expect(pool.reservePages == 40)
        }

        /// The same seeded churn of stores and frees runs twice with maintenance keeping
        /// up after every call: the first run grows the tables; in the second (steady
        /// state) the request path maps nothing, discards nothing, starts no zspage
        /// outside the reserve, and its thread takes no page fault at all. A pool without
        /// a reserve faults on the same churn, so the fault count can see the difference.
        @Test func steadyStateRequestPathMakesNoSystemCallAndNoFault() throws {
            let seed: UInt64 = 77
            let withReserve = churn(ZsPool(reserve: Self.policy), seed: seed)
            let withoutReserve = churn(ZsPool(), seed: seed)
            print("steady-state churn (seed \(seed)): with reserve \(withReserve), without \(withoutReserve)")
            #expect(withReserve.systemCalls == 0, "seed \(seed)")
            #expect(withReserve.unreservedSlots == 0, "seed \(seed)")
            #expect(withReserve.minorFaults == 0, "seed \(seed)")
            #expect(withoutReserve.systemCalls > 0, "seed \(seed)")
            #expect(withoutReserve.minorFaults > 0, "seed \(seed)")
        }

        struct SteadyState: CustomStringConvertible {
            var systemCalls = 0
            var unreservedSlots = 0
            var minorFaults = 0
            var description: String { "system calls \(systemCalls), unreserved slots \(unreservedSlots), minor faults \(minorFaults)" }
        }

        /// Runs the churn of `seed` twice and reports the request path's second run.
        func churn(_ pool: ZsPool, seed: UInt64) -> SteadyState {
            let source = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
            defer { source.deallocate() }
            fillPattern(source, seed: seed)
            var live: [ObjectHandle] = []
            live.reserveCapacity(4096)
            var result = SteadyState()
            for round in 0..<2 {
                var random = SplitMix64(seed: seed)
                let calls = pool.arena.counters.requestPathSystemCalls
                let unreserved = pool.arena.counters.unreservedSlots.load(ordering: .relaxed)
                var faults = 0
                for _ in 0..<20_000 {
                    let storing = live.count < 200 || (live.count < 4000 && random.next() % 2 == 0)
                    let length = random.compressedSize()
                    let victim = live.isEmpty ? 0 : Int(random.next() % UInt64(live.count))
                    let before = Self.threadMinorFaults()
                    if storing {
                        // The pool refuses memory only if the OS does: then the test ends here.
                        guard let handle = pool.store(UnsafeRawBufferPointer(rebasing: source[..<length])) else { return result }
                        faults += Self.threadMinorFaults() - before
                        live.append(handle)
                    } else {
                        pool.free(live[victim])
                        faults += Self.threadMinorFaults() - before
                        live.swapAt(victim, live.count - 1)
                        live.removeLast()
                    }
                    pool.maintainReserve()
                }
                for handle in live { pool.free(handle) }
                live.removeAll(keepingCapacity: true)
                pool.maintainReserve()
                if round == 1 {
                    result.systemCalls = pool.arena.counters.requestPathSystemCalls - calls
                    result.unreservedSlots = pool.arena.counters.unreservedSlots.load(ordering: .relaxed) - unreserved
                    result.minorFaults = faults
                }
            }
            return result
        }

        /// A device's policy on compressed-page-like sizes: once maintenance has caught up,
        /// the reserve holds at most `highPages` per zspage length, mem_used_total leaves
        /// it out, and when everything is freed the reserve is all the pool keeps resident.
        @Test func theStandardReserveStaysWithinItsPolicy() throws {
            let policy = ReservePolicy.standard
            let pool = ZsPool(reserve: policy)
            var random = SplitMix64(seed: 8)
            let source = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
            defer { source.deallocate() }
            fillPattern(source, seed: 8)
            var handles: [ObjectHandle] = []
            for index in 0..<60_000 {
                handles.append(try #require(pool.store(UnsafeRawBufferPointer(rebasing: source[..<random.compressedSize()]))))
                if index % 64 == 0 { pool.maintainReserve() }
            }
            pool.maintainReserve()
            let bound = SizeClassTable.maximumPagesPerZspage * policy.highPages
            let (used, reserve) = (pool.memoryUsed / 4096, pool.reservePages)
            let resident = pool.arena.residentPages() ?? -1
            #expect(used == pool.pagesFromStatistics, "mem_used_total counts zspage pages only")
            #expect(reserve <= bound)
            #expect(resident >= used + reserve)
            handles.shuffle(using: &random)
            for handle in handles { pool.free(handle) }
            pool.maintainReserve()
            let residentAfter = pool.arena.residentPages() ?? -1
            print("standard reserve: \(used) pages used, reserve \(reserve), resident \(resident); after freeing all: reserve \(pool.reservePages), resident \(residentAfter)")
            #expect(pool.memoryUsed == 0)
            #expect(pool.reservePages <= bound)
            #expect(residentAfter == pool.reservePages, "all the pool keeps is its reserve")
        }

        /// The maintenance thread refills a reserve the request path asked for, and stops.
        @Test func theMaintenanceThreadRefillsWhenAsked() throws {
            let pool = ZsPool(reserve: Self.policy)
            let maintainer = try ReserveMaintainer(pool: pool)
            let page = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.hugePayload, alignment: 16)
            defer { page.deallocate() }
            fillPattern(page, seed: 23)
            let handle = try #require(pool.store(UnsafeRawBufferPointer(page)))
            // Liveness, not timing: the thread gets up to 20 s to do a pass it was asked for.
            var polls = 0
            while pool.arena.readyPages(length: 1) < 40, polls < 4000 {
                usleep(5000)
                polls += 1
            }
            #expect(pool.arena.readyPages(length: 1) == 40)
            maintainer.stop()
            pool.free(handle)
            #expect(pool.arena.readyPages(length: 1) == 41, "the freed slot joined the reserve")
        }
    }
}
