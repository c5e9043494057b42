/// zram's `mm_stat`: memory usage, in the kernel's field order.
public struct MemoryStatistics: Sendable, Hashable, Codable {
    /// Uncompressed bytes stored, including same-filled pages.
    public var origDataSize: UInt64 = 0
    /// Compressed bytes stored; a huge page counts 4096.
    public var comprDataSize: UInt64 = 0
    /// Bytes of memory the allocator holds (excluding the page table).
    public var memUsedTotal: UInt64 = 0
    /// The configured limit on `memUsedTotal`; 0 means none.
    public var memLimit: UInt64 = 0
    /// The highest `memUsedTotal` since init or the last peak reset.
    public var memUsedMax: UInt64 = 0
    /// Same-filled pages, stored without allocation.
    public var samePages: UInt64 = 0
    /// Pages freed by compaction, running total.
    public var pagesCompacted: UInt64 = 0
    /// Incompressible pages stored raw.
    public var hugePages: UInt64 = 0
    /// Pages ever stored raw, running total.
    public var hugePagesSince: UInt64 = 0

    public init() {}

    /// The fields in the kernel's order.
    public var fields: [UInt64] {
        [origDataSize, comprDataSize, memUsedTotal, memLimit, memUsedMax,
         samePages, pagesCompacted, hugePages, hugePagesSince]
    }

    /// The field names, as `znbd status --json` and zram's documentation spell them.
    public static let fieldNames = [
        "orig_data_size", "compr_data_size", "mem_used_total", "mem_limit", "mem_used_max",
        "same_pages", "pages_compacted", "huge_pages", "huge_pages_since",
    ]

    /// The line `/sys/block/zramN/mm_stat` would print.
    public var kernelText: String { kernelStatLine(fields) }
}

/// zram's `io_stat`: failure counters, in the kernel's field order.
public struct IOStatistics: Sendable, Hashable, Codable {
    public var failedReads: UInt64 = 0
    public var failedWrites: UInt64 = 0
    /// Requests rejected for their range or alignment.
    public var invalidIO: UInt64 = 0
    /// Pages released by discard or write-zeroes.
    public var notifyFree: UInt64 = 0
    /// Pages read and written (zram's num_reads and num_writes, in `stat`).
    public var pagesRead: UInt64 = 0
    public var pagesWritten: UInt64 = 0

    public init() {}

    public var fields: [UInt64] { [failedReads, failedWrites, invalidIO, notifyFree] }

    public static let fieldNames = ["failed_reads", "failed_writes", "invalid_io", "notify_free"]

    /// The line `/sys/block/zramN/io_stat` would print.
    public var kernelText: String { kernelStatLine(fields) }
}

/// Formats counters as zram does: each right-aligned in 8 columns, space separated.
func kernelStatLine(_ fields: [UInt64]) -> String {
    fields.map { value in
        let digits = String(value)
        return String(repeating: " ", count: max(0, 8 - digits.count)) + digits
    }.joined(separator: " ") + "\n"
}
