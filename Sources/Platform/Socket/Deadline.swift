/// A point in time after which waiting stops, turned into `poll(2)` timeouts.
///
/// Every wait of a bounded phase (a handshake, a connect) polls with what is left
/// of one deadline, so a peer that trickles bytes in or out cannot stretch it.
/// Any timeout, however large, saturates instead of overflowing.
public struct Deadline: Sendable {
    /// nil: never.
    private let instant: ContinuousClock.Instant?

    /// No deadline: waits are unbounded (`poll` timeout -1).
    public static let never = Deadline(instant: nil)

    private init(instant: ContinuousClock.Instant?) { self.instant = instant }

    /// `timeout` from now.
    public init(after timeout: Duration) {
        instant = ContinuousClock.now.advanced(by: timeout)
    }

    public var isNever: Bool { instant == nil }

    /// Whether the deadline has passed.
    public var hasPassed: Bool { pollTimeout == 0 }

    /// What is left, as a `poll` timeout: -1 for never, 0 once passed, else the
    /// milliseconds left, rounded up and capped at `Int32.max`.
    public var pollTimeout: Int32 {
        guard let instant else { return -1 }
        let left = ContinuousClock.now.duration(to: instant)
        guard left > .zero else { return 0 }
        let (seconds, attoseconds) = left.components
        guard seconds < Int64(Int32.max / 1000) else { return Int32.max }
        let milliseconds = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(clamping: milliseconds)
    }
}
