#if canImport(Glibc)
import Glibc
#endif
import Logging
import NBD

/// How `znbd serve` waits for its stop signal.
///
/// A server with clients in transmission holds their data: a swap area or a mounted
/// file system would get I/O errors and lose its pages if it stopped. So, as the
/// kernel refuses to reset a zram device that is open, the first SIGTERM or SIGINT
/// keeps serving, logs who holds which device, and stops when the last client
/// detaches. A second signal, or `--force-stop` before the first, stops at once.
public struct ServeStop {
    public let server: NBDServer
    public let registry: DeviceRegistry
    /// Stop at the first signal even with clients attached.
    public let force: Bool
    public let logger: Logger

    public init(server: NBDServer, registry: DeviceRegistry, force: Bool, logger: Logger) {
        self.server = server
        self.registry = registry
        self.force = force
        self.logger = logger
    }

    /// Clients attached (in transmission, or just entering it) by export name, of exports that have any.
    public func holders() -> [String: Int] {
        var result: [String: Int] = [:]
        for export in registry.all {
            let count = registry.exports.attachmentCount(of: export)
            if count > 0 { result[export.name] = count }
        }
        return result
    }

    /// Returns when the server should stop. `signals` (SIGTERM and SIGINT) must be
    /// blocked in every thread, so only this wait receives them.
    public func wait(for signals: sigset_t) {
        var signals = signals
        var received: Int32 = 0
        sigwait(&signals, &received)
        var attached = holders()
        if force || attached.isEmpty {
            logger.info("signal \(received): finishing in-flight requests")
            return
        }
        logger.warning(
            "signal \(received): still serving \(Self.describe(attached)) until the clients detach (swapoff, umount, nbd-client -d); send SIGTERM or SIGINT again to stop at once, which fails their I/O")
        SystemdNotify.send("STATUS=waiting for clients to detach: \(Self.describe(attached))")
        // Wake every 100 ms to see who is left; a second signal ends the wait.
        var interval = timespec(tv_sec: 0, tv_nsec: 100_000_000)
        while true {
            let signal = sigtimedwait(&signals, nil, &interval)
            if signal > 0 {
                logger.warning("signal \(signal) again: stopping at once; cutting off \(Self.describe(holders()))")
                return
            }
            let now = holders()
            if now.isEmpty {
                logger.info("the last client detached: stopping")
                return
            }
            if now != attached {
                logger.info("still serving \(Self.describe(now))")
                SystemdNotify.send("STATUS=waiting for clients to detach: \(Self.describe(now))")
                attached = now
            }
        }
    }

    /// `zram0 (1 connection), zram1 (2 connections)`.
    static func describe(_ holders: [String: Int]) -> String {
        holders.sorted { $0.key.numericallyBefore($1.key) }
            .map { "\($0.key) (\($0.value) connection\($0.value == 1 ? "" : "s"))" }
            .joined(separator: ", ")
    }
}
