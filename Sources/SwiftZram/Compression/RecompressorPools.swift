/// The compressors of zram's recompression priorities 1, 2 and 3 (`recomp_algorithm`),
/// each a ``CompressorPool`` of its own with its algorithm's parameters.
///
/// A page keeps the priority that compressed it, and is decompressed with that
/// priority's pool. Priority 0, the primary, is the device's main pool and not here.
struct RecompressorPools: Sendable {
    /// The highest priority that exists.
    static let highestPriority = 3

    private let first: CompressorPool?
    private let second: CompressorPool?
    private let third: CompressorPool?

    /// - Parameters:
    ///   - parameters: priorities 1, 2, 3 in order (nil for none; missing entries are none).
    ///   - streams: streams per pool, as the primary has.
    /// - Throws: what ``CompressorPool/init(parameters:streams:)`` throws.
    init(parameters: [CompressionParameters?], streams: Int) throws(ZramError) {
        precondition(parameters.count <= Self.highestPriority, "at most \(Self.highestPriority) recompression priorities")
        func pool(_ priority: Int) throws(ZramError) -> CompressorPool? {
            guard priority <= parameters.count, let chosen = parameters[priority - 1] else { return nil }
            return try CompressorPool(parameters: chosen, streams: streams)
        }
        first = try pool(1)
        second = try pool(2)
        third = try pool(3)
    }

    /// The pool of `priority` (1...3), nil if that priority has no algorithm.
    subscript(priority: Int) -> CompressorPool? {
        switch priority {
        case 1: first
        case 2: second
        case 3: third
        default: nil
        }
    }

    /// The highest priority with an algorithm; 0 when there is none (zram's num_active_comps - 1).
    var highestConfigured: Int {
        third != nil ? 3 : second != nil ? 2 : first != nil ? 1 : 0
    }

    /// Decompresses an object that priority `priority` compressed.
    /// - Returns: false if the priority has no pool or the data does not decompress.
    @inline(never)
    func decompress(_ object: UnsafeRawBufferPointer, priority: Int, into destination: UnsafeMutableRawBufferPointer) -> Bool {
        guard let pool = self[priority] else { return false }
        return pool.withStream { $0.decompress(object, into: destination) }
    }
}
