import CPlatform
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Same-host swap safety: a server that backs swap on its own host takes part in memory
/// reclaim, and must not page-fault, be OOM-killed or be throttled while the kernel
/// writes to it. Each step throws a ``HardeningError`` naming the privilege it needs;
/// ``applyProcessWide(lockMemory:)`` turns them into warnings.
public enum ProcessHardening {
    /// `mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)`: nothing the process has or
    /// touches is paged out, while untouched reservations stay unbacked.
    public static func lockAllMemory() throws(HardeningError) {
        do {
            try valueOrErrno { cplatform_mlockall_on_fault() }
        } catch {
            throw HardeningError(
                call: "mlockall(MCL_CURRENT|MCL_FUTURE|MCL_ONFAULT)", errno: error,
                consequence: "needs CAP_IPC_LOCK or a large RLIMIT_MEMLOCK; the server may deadlock when used as same-host swap")
        }
    }

    /// Writes -1000 to `/proc/self/oom_score_adj` so the OOM killer spares the process.
    public static func disableOOMKiller() throws(HardeningError) {
        let call = "write -1000 to /proc/self/oom_score_adj"
        do {
            let fd = try FileDescriptor.open("/proc/self/oom_score_adj", .writeOnly, options: .closeOnExec)
            try fd.closeAfter { _ = try fd.writeAll("-1000\n".utf8) }
        } catch {
            throw HardeningError(call: call, errno: error as? Errno ?? .ioError, consequence: "needs CAP_SYS_RESOURCE")
        }
    }

    /// `prctl(PR_SET_IO_FLUSHER, 1)` on the calling thread: its allocations do not
    /// recurse into I/O reclaim and it is not throttled by dirty-page limits. Call it on
    /// every thread that serves I/O.
    public static func markCurrentThreadAsIOFlusher() throws(HardeningError) {
        do {
            try valueOrErrno { cplatform_prctl_set_io_flusher(1) }
        } catch {
            throw HardeningError(
                call: "prctl(PR_SET_IO_FLUSHER)", errno: error,
                consequence: "needs CAP_SYS_RESOURCE and Linux 5.6+; I/O threads may be throttled during reclaim")
        }
    }

    /// All three; returns the warnings (empty when everything took effect).
    public static func applyProcessWide(lockMemory: Bool = true) -> [HardeningError] {
        var warnings: [HardeningError] = []
        if lockMemory {
            do { try lockAllMemory() } catch { warnings.append(error) }
        }
        do { try disableOOMKiller() } catch { warnings.append(error) }
        do { try markCurrentThreadAsIOFlusher() } catch { warnings.append(error) }
        return warnings
    }
}

/// A hardening step that did not take effect.
public struct HardeningError: Error, CustomStringConvertible, Sendable {
    public let call: String
    public let errno: Errno
    /// What it needs and what happens without it.
    public let consequence: String

    public var description: String { "\(call) failed: \(errno) (\(consequence))" }
}
