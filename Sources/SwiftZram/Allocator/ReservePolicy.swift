/// How much already-faulted, locked zspage memory a pool keeps ready, per zspage
/// length (1 to 8 pages), so that the request path takes memory without a system
/// call or a page fault. See ``PageArena``.
///
/// A length's reserve is refilled when a zspage of that length was taken from it
/// and it fell below ``lowPages``, and given back when it rose above ``highPages``
/// (zspages freed into it); both move it to ``targetPages``, halfway between, so a
/// pool that allocates and frees around one size does not refill and give back in
/// turn. Only lengths the pool has used are refilled: an empty pool keeps nothing.
public struct ReservePolicy: Sendable, Equatable {
    /// Refill below this many pages of one zspage length.
    public var lowPages: Int
    /// Give back above this many pages of one zspage length.
    public var highPages: Int

    /// - Precondition: `0 < lowPages < highPages`.
    public init(lowPages: Int, highPages: Int) {
        precondition(lowPages > 0 && lowPages < highPages, "reserve water marks need 0 < low < high")
        self.lowPages = lowPages
        self.highPages = highPages
    }

    /// Where refilling and giving back stop.
    public var targetPages: Int { (lowPages + highPages) / 2 }

    /// What a device's pool keeps: between 128 KiB and 1 MiB per zspage length in use
    /// (at most 8 MiB when all eight are).
    public static let standard = ReservePolicy(lowPages: 32, highPages: 256)
}
