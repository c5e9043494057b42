import Foundation
import SwiftZram
import Synchronization
import Testing

@Suite("Compression under contention")
struct CompressionConcurrencyTests {
    /// Counts failures and checks that no stream is ever lent to two threads at once.
    ///
    /// `@unchecked Sendable`: `inUse` is only touched while holding `lock`. (An NSLock
    /// rather than `Mutex`, because ThreadSanitizer understands pthread mutexes but not
    /// Synchronization's futex-based `Mutex` on Linux, and reports false races on it.)
    final class Monitor: @unchecked Sendable {
        let failures = Atomic<Int>(0)
        let rounds = Atomic<Int>(0)
        let holders = Atomic<Int>(0)
        let mostHolders = Atomic<Int>(0)
        private let lock = NSLock()
        private var inUse = Set<UInt>()

        func enter(_ stream: CompressionStream) {
            let now = holders.add(1, ordering: .relaxed).newValue
            mostHolders.max(now, ordering: .relaxed)
            let id = UInt(bitPattern: stream.workPage.baseAddress)
            let fresh = lock.withLock { inUse.insert(id).inserted }
            if !fresh { failures.add(1, ordering: .relaxed) }
        }

        func leave(_ stream: CompressionStream) {
            let id = UInt(bitPattern: stream.workPage.baseAddress)
            _ = lock.withLock { inUse.remove(id) }
            holders.subtract(1, ordering: .relaxed)
        }
    }

    @Test(arguments: CompressionAlgorithm.allCases)
    func manyThreadsOnTwoStreams(_ algorithm: CompressionAlgorithm) throws {
        let pool = try CompressorPool(parameters: CompressionParameters(algorithm: algorithm), streams: 2)
        let monitor = Monitor()
        let threads = 8
        let iterations = 150
        let done = DispatchGroup()
        for thread in 0..<threads {
            done.enter()
            Thread {
                defer { done.leave() }
                for iteration in 0..<iterations {
                    let kind = TestPage.allCases[(thread + iteration) % TestPage.allCases.count]
                    let page = kind.bytes(seed: UInt64(thread * 1000 + iteration))
                    let compressed: [UInt8] = pool.withStream { stream in
                        monitor.enter(stream)
                        defer { monitor.leave(stream) }
                        // Use the work page too, as the device's partial writes do.
                        page.withUnsafeBytes { stream.workPage.copyMemory(from: $0) }
                        return Array(stream.compress(UnsafeRawBufferPointer(stream.workPage)))
                    }
                    let restored: [UInt8]? = pool.withStream { stream in
                        monitor.enter(stream)
                        defer { monitor.leave(stream) }
                        var out = [UInt8](repeating: 0, count: TestPage.size)
                        let ok = compressed.withUnsafeBytes { source in
                            out.withUnsafeMutableBytes { stream.decompress(source, into: $0) }
                        }
                        return ok ? out : nil
                    }
                    if restored != page { monitor.failures.add(1, ordering: .relaxed) }
                    monitor.rounds.add(1, ordering: .relaxed)
                }
            }.start()
        }
        done.wait()
        #expect(monitor.failures.load(ordering: .relaxed) == 0)
        #expect(monitor.rounds.load(ordering: .relaxed) == threads * iterations)
        #expect(monitor.mostHolders.load(ordering: .relaxed) <= 2)
    }

    @Test func poolIsSharedAcrossTasks() async throws {
        let pool = try CompressorPool(parameters: CompressionParameters(algorithm: .zstd, level: 3), streams: 2)
        let results = await withTaskGroup(of: Bool.self) { group in
            for seed in 0..<32 {
                group.addTask {
                    let page = TestPage.structArray.bytes(seed: UInt64(seed))
                    return pool.decompressed(pool.compressed(page)) == page
                }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results.count == 32 && results.allSatisfy { $0 })
    }
}
