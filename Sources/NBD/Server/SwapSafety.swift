#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Same-host swap safety: a server that backs swap on its own host takes part in
/// memory reclaim, and must not page-fault, be OOM-killed or be throttled while
/// the kernel writes to it. Each call returns nil on success or a readable
/// warning when a privilege is missing; none of them fails the caller.
public enum SwapSafety {
    /// `MCL_ONFAULT` (Linux 4.4+): lock pages when first touched, not at once.
    static let mclOnFault: Int32 = 4
    /// `PR_SET_IO_FLUSHER` (Linux 5.6+).
    static let prSetIOFlusher: Int32 = 57

    /// `mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)`: nothing the server has or
    /// touches is paged out, while untouched reservations stay unbacked.
    public static func lockAllMemory() -> String? {
        if mlockall(Int32(MCL_CURRENT) | Int32(MCL_FUTURE) | mclOnFault) == 0 { return nil }
        return "mlockall(MCL_CURRENT|MCL_FUTURE|MCL_ONFAULT) failed: \(String(cString: strerror(errno)))"
            + " (needs CAP_IPC_LOCK or a large RLIMIT_MEMLOCK); the server may deadlock when used as same-host swap"
    }

    /// Writes -1000 to `/proc/self/oom_score_adj` so the OOM killer spares the server.
    public static func disableOOMKiller() -> String? {
        let fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return "cannot open /proc/self/oom_score_adj: \(String(cString: strerror(errno)))" }
        defer { close(fd) }
        let ok = Array("-1000\n".utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) == $0.count }
        return ok ? nil : "cannot set oom_score_adj to -1000: \(String(cString: strerror(errno))) (needs CAP_SYS_RESOURCE)"
    }

    /// `prctl(PR_SET_IO_FLUSHER, 1)` on the calling thread: its allocations do not
    /// recurse into I/O reclaim and it is not throttled by dirty-page limits.
    /// Call it on every thread that serves I/O (the server does when
    /// `markIOThreadsAsIOFlushers` is set).
    public static func markCurrentThreadAsIOFlusher() -> String? {
        guard let prctl = prctlFunction else { return "prctl is unavailable; PR_SET_IO_FLUSHER not set" }
        if prctl(prSetIOFlusher, 1, 0, 0, 0) == 0 { return nil }
        return "prctl(PR_SET_IO_FLUSHER) failed: \(String(cString: strerror(errno)))"
            + " (needs CAP_SYS_RESOURCE and Linux 5.6+); I/O threads may be throttled during reclaim"
    }

    /// All three; returns the warnings (empty when everything took effect).
    public static func applyProcessWide(lockMemory: Bool = true) -> [String] {
        var warnings: [String] = []
        if lockMemory, let w = lockAllMemory() { warnings.append(w) }
        if let w = disableOOMKiller() { warnings.append(w) }
        if let w = markCurrentThreadAsIOFlusher() { warnings.append(w) }
        return warnings
    }

    /// prctl(2) is variadic in C, which Swift cannot call; the four optional
    /// arguments are unsigned longs, so a fixed-arity pointer is ABI-compatible
    /// on Linux's x86_64 and arm64 calling conventions.
    typealias PrctlFunction = @convention(c) (Int32, UInt, UInt, UInt, UInt) -> Int32
    static var prctlFunction: PrctlFunction? {
        guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "prctl") else { return nil }
        return unsafeBitCast(sym, to: PrctlFunction.self)
    }
}
