import Synchronization
import Testing
@testable import SwiftZram

/// The size classes' lock: mutual exclusion with more threads than CPUs (so holders
/// get preempted and waiters reach the futex sleep), and values handed back out.
@Suite struct ClassLockTests {
    final class Box: Sendable {
        let lock = ClassLock<[Int]>([0, 0])
    }

    @Test func excludesAcrossOversubscribedThreads() {
        let box = Box()
        let threads = 8, rounds = 200_000
        let workers = (0..<threads).map { _ in
            startThread {
                for _ in 0..<rounds {
                    box.lock.withLock { pair in
                        // Two stores that a second holder would tear apart.
                        pair[0] += 1
                        pair[1] = pair[0] * 2
                    }
                }
            }
        }
        for worker in workers { worker.join() }
        let pair = box.lock.withLock { $0 }
        #expect(pair[0] == threads * rounds)
        #expect(pair[1] == 2 * threads * rounds)
    }

    @Test func returnsAndRethrowsWhatTheBodyDoes() throws {
        let lock = ClassLock(41)
        #expect(lock.withLock { value -> Int in
            value += 1
            return value
        } == 42)
        struct Refused: Error {}
        #expect(throws: Refused.self) { try lock.withLock { _ throws(Refused) in throw Refused() } }
        // The lock was released on the throw.
        #expect(lock.withLock { $0 } == 42)
    }
}
