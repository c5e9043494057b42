/// `znbd status --json`: every device with zram's counters by name.
public struct ServerStatus: Codable, Equatable, Sendable {
    public var devices: [DeviceStatus]

    public init(devices: [DeviceStatus]) { self.devices = devices }
}

/// One device in `ServerStatus`, with the kernel's attribute names.
public struct DeviceStatus: Codable, Equatable, Sendable {
    public var name: String
    public var disksize: UInt64
    public var initstate: Int
    public var comp_algorithm: String
    public var streams: Int
    public var mm_stat: [String: UInt64]
    public var io_stat: [String: UInt64]
    public var connections: Int
    /// bd_stat's fields by name (bd_count, bd_reads, bd_writes; 4 KiB units).
    public var bd_stat: [String: UInt64] = [:]
    /// What backing_dev reads: the backing store's path or URI, or `none`.
    public var backing_dev: String = "none"
    /// Pages marked idle (zram's `idle`); nil from servers before it was reported.
    public var idle_pages: Int? = nil
    /// Recompression since init: `pages` stored smaller and compressed `saved_bytes`
    /// (the kernel keeps no such counter); nil from servers before it was reported.
    public var recompression: [String: UInt64]? = nil
    /// Automatic tiering: its knobs (`tiering_enable`, `tiering_idle_age`, ...) and
    /// `tiering_stat`'s fields by name; nil from servers before it was reported.
    public var tiering: [String: UInt64]? = nil
}
