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
    @Test func ioFlusherReportsInsteadOfFailing() {
        // Privileged this takes effect; unprivileged it throws an error naming the call. Neither crashes.
        do {
            try ProcessHardening.markCurrentThreadAsIOFlusher()
        } catch {
            #expect(error.description.contains("PR_SET_IO_FLUSHER"))
        }
    }
}
