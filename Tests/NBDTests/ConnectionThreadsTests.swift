import Synchronization
import Testing

@testable import NBD

#if canImport(Glibc)
import Glibc
#endif

/// Connections run on parked threads when there are any, so per-thread state a
/// library never frees (GnuTLS's) costs once per thread, not once per connection.
/// The kernel's id of the calling thread (`/proc/thread-self` is `PID/task/TID`).
private func currentThreadID() -> pid_t {
    var buffer = [CChar](repeating: 0, count: 64)
    let count = readlink("/proc/thread-self", &buffer, buffer.count - 1)
    guard count > 0 else { return -1 }
    let text = String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return pid_t(text.split(separator: "/").last.flatMap { Int32($0) } ?? -1)
}

@Suite struct ConnectionThreadsTests {
    /// Waits (bounded) until `count` threads are parked.
    private func waitUntilParked(_ threads: ConnectionThreads, _ count: Int) -> Bool {
        for _ in 0..<2000 {
            if threads.parked == count { return true }
            usleep(1_000)
        }
        return threads.parked == count
    }

    @Test func sequentialConnectionsReuseOneThread() throws {
        let threads = ConnectionThreads(stackSize: 1 << 20)
        defer { threads.stop() }
        let seen = Mutex<[pid_t]>([])
        for round in 0..<20 {
            try threads.run(name: "test-conn-\(round)") { seen.withLock { $0.append(currentThreadID()) } }
            #expect(waitUntilParked(threads, 1), "round \(round)")
        }
        let ids = seen.withLock { $0 }
        #expect(ids.count == 20)
        #expect(Set(ids).count == 1, "20 connections one after another ran on \(Set(ids).count) threads")
    }

    @Test func concurrentConnectionsGetTheirOwnThreadsAndAllPark() throws {
        let threads = ConnectionThreads(stackSize: 1 << 20)
        let release = Atomic<Bool>(false)
        let seen = Mutex<Set<pid_t>>([])
        for index in 0..<4 {
            try threads.run(name: "test-conn-\(index)") {
                seen.withLock { _ = $0.insert(currentThreadID()) }
                while !release.load(ordering: .acquiring) { usleep(1_000) }
            }
        }
        release.store(true, ordering: .releasing)
        #expect(waitUntilParked(threads, 4))
        #expect(seen.withLock { $0.count } == 4)
        // Handed to the parked threads: no new thread.
        for index in 0..<4 { try threads.run(name: "again-\(index)") { seen.withLock { _ = $0.insert(currentThreadID()) } } }
        #expect(waitUntilParked(threads, 4))
        #expect(seen.withLock { $0.count } == 4)
        threads.stop()
        #expect(threads.parked == 0)
        // After stop a connection still runs, on a thread that does not park.
        let ran = Atomic<Bool>(false)
        try threads.run(name: "late") { ran.store(true, ordering: .releasing) }
        for _ in 0..<2000 where !ran.load(ordering: .acquiring) { usleep(1_000) }
        let didRun = ran.load(ordering: .acquiring)
        #expect(didRun)
        #expect(threads.parked == 0)
    }
}
