#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Platform
import Testing
@testable import SwiftZram

/// Stream leases: a waiter for a busy stream spins briefly, then sleeps, and a
/// release wakes it.
@Suite struct CompressionStreamLeaseTests {
    /// Shared between the test and its threads.
    // @unchecked: StreamLeases is thread-safe by design (atomics, and a pthread mutex and
    // condition at fixed heap addresses); it is not Sendable only because it holds pointers.
    final class Shared: @unchecked Sendable {
        let leases: StreamLeases
        let holders = Atomic<Int>(0)
        let mostHolders = Atomic<Int>(0)
        let acquired = Atomic<Bool>(false)

        init(count: Int) throws {
            guard let leases = StreamLeases(count: count) else { throw ZramError(.outOfMemory, "no leases") }
            self.leases = leases
        }

        var hasAcquired: Bool { acquired.load(ordering: .acquiring) }
    }

    @Test func aWaiterSleepsUntilTheStreamIsReleased() throws {
        let shared = try Shared(count: 1)
        let held = shared.leases.acquire()
        let waiter = startThread {
            shared.leases.release(shared.leases.acquire())
            shared.acquired.store(true, ordering: .releasing)
        }
        // The waiter must go to sleep rather than spin or yield forever.
        var polls = 0
        while shared.leases.sleepingWaiters == 0 && polls < 60_000 {
            usleep(1000)
            polls += 1
        }
        #expect(shared.leases.sleepingWaiters == 1, "the waiter never slept")
        #expect(!shared.hasAcquired)
        shared.leases.release(held)
        waiter.join()
        #expect(shared.hasAcquired)
        #expect(shared.leases.sleepingWaiters == 0)
    }

    /// Many short leases on few streams: never more holders than streams, and no waiter is lost.
    @Test(arguments: [1, 2])
    func contendedLeasesAreExclusiveAndAllComplete(streams: Int) throws {
        let shared = try Shared(count: streams)
        let threads = (0..<4).map { _ in
            startThread {
                for round in 0..<2000 {
                    let index = shared.leases.acquire()
                    let now = shared.holders.add(1, ordering: .relaxed).newValue
                    var most = shared.mostHolders.load(ordering: .relaxed)
                    while now > most {
                        let (won, seen) = shared.mostHolders.compareExchange(expected: most, desired: now, ordering: .relaxed)
                        if won { break }
                        most = seen
                    }
                    if round % 97 == 0 { usleep(50) }  // a holder that is slow now and then
                    shared.holders.subtract(1, ordering: .relaxed)
                    shared.leases.release(index)
                }
            }
        }
        for thread in threads { thread.join() }
        let most = shared.mostHolders.load(ordering: .relaxed)
        #expect(most <= streams)
        #expect(shared.leases.sleepingWaiters == 0)
    }

    @Test func backoffSleepsOnlyAfterSpinningAndYielding() {
        var backoff = Backoff()
        var busyRounds = 0
        while backoff.spinOrYield() { busyRounds += 1 }
        #expect(busyRounds == Backoff.spinRounds + Backoff.yieldRounds)
        #expect(backoff.sleeps == 0)
        backoff.sleep()
        backoff.pause()
        #expect(backoff.sleeps >= 2)
    }
}
