import Foundation
import Platform
import Synchronization
import SystemPackage
import Testing

@Suite struct PosixThreadTests {
    @Test func joinableThreadRunsItsBodyAndIsNamed() throws {
        let name = Mutex<String>("")
        let thread = try PosixThread.spawn(name: "platform-test-thread-long-name") {
            let comm = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? ""
            name.withLock { $0 = comm.trimmingCharacters(in: .newlines) }
        }
        thread.join()
        thread.join()  // a second join returns at once
        // The kernel keeps 15 bytes of the name.
        #expect(name.withLock { $0 } == "platform-test-t")
    }

    @Test func detachedThreadRuns() throws {
        let done = DispatchSemaphore(value: 0)
        try PosixThread.detach(name: "platform-detach") { done.signal() }
        #expect(done.wait(timeout: .now() + 30) == .success)
    }

    @Test func creationFailureThrowsErrno() {
        // A stack smaller than PTHREAD_STACK_MIN is EINVAL, thrown rather than trapped.
        #expect(throws: Errno.invalidArgument) {
            try PosixThread.detach(name: "too-small", stackSize: 16) {}
        }
    }
}

@Suite struct ProcessHardeningTests {
    /// PR_SET_IO_FLUSHER takes effect exactly when the process holds CAP_SYS_RESOURCE
    /// (Linux 5.6+); otherwise it throws EPERM with a message naming the call and what it needs.
    @Test func ioFlusherSucceedsWithCapSysResourceAndThrowsWithout() throws {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let effective = try #require(status.split(separator: "\n").first { $0.hasPrefix("CapEff:") })
        let capabilities = try #require(UInt64(effective.dropFirst(7).trimmingCharacters(in: .whitespaces), radix: 16))
        let hasSysResource = capabilities & (1 << 24) != 0  // CAP_SYS_RESOURCE
        // On a thread of its own: the flag stays with the thread.
        let outcome = Mutex<HardeningError??>(nil)
        let thread = try PosixThread.spawn(name: "io-flusher-test") {
            do throws(HardeningError) {
                try ProcessHardening.markCurrentThreadAsIOFlusher()
                outcome.withLock { $0 = .some(nil) }
            } catch {
                outcome.withLock { $0 = .some(error) }
            }
        }
        thread.join()
        let result = try #require(outcome.withLock { $0 })
        if hasSysResource {
            #expect(result == nil)
        } else {
            #expect(result?.errno == .notPermitted)
            #expect(
                result?.description == "prctl(PR_SET_IO_FLUSHER) failed: Operation not permitted"
                    + " (needs CAP_SYS_RESOURCE and Linux 5.6+; I/O threads may be throttled during reclaim)")
        }
    }
}
