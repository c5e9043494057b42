/// The seam between the NBD server and whatever stores the data.
///
/// The server never knows what kind of store it talks to, as nbdkit's
/// protocol layer never knows which allocator backs the memory plugin.
/// Every method may be called from many threads at once.
public protocol BlockExport: AnyObject, Sendable {
    /// The export name clients ask for (`zram0`).
    var name: String { get }
    /// A short description for `NBD_OPT_LIST` and `NBD_INFO_DESCRIPTION` (`1 GiB lz4`).
    var exportDescription: String { get }
    /// The size in bytes; 0 while the device has no disksize.
    var size: UInt64 { get }

    /// Fills `buffer` with the bytes at `offset`. The range lies inside `size`.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(BlockExportError)
    /// As ``read(into:at:)``; `splittable` false says the caller is one of several threads
    /// serving its client at once (the FUSE export's queues), so a large read should stay
    /// on the caller's thread rather than be shared with other threads.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64, splittable: Bool) throws(BlockExportError)
    /// Stores `data` at `offset`. The range lies inside `size`.
    func write(_ data: UnsafeRawBufferPointer, at offset: UInt64) throws(BlockExportError)
    /// As ``write(_:at:)``; `backlogged` says the connection already holds more
    /// requests to serve after this one, so this reply goes out with theirs.
    func write(_ data: UnsafeRawBufferPointer, at offset: UInt64, backlogged: Bool) throws(BlockExportError)
    /// Forgets the range: it reads as zeros and frees what it can.
    func trim(offset: UInt64, length: UInt64) throws(BlockExportError)
    /// Makes the range read as zeros; `mayTrim` false means it must stay allocated (NBD_CMD_FLAG_NO_HOLE).
    func writeZeroes(offset: UInt64, length: UInt64, mayTrim: Bool) throws(BlockExportError)
    /// Makes every completed write durable. A memory store has nothing to do.
    func flush() throws(BlockExportError)
    /// Reports how the range is stored, as runs of pages with the same status, in order.
    /// Calls `body` with (length, flags) until it returns false or the range is covered.
    func blockStatus(offset: UInt64, length: UInt64, _ body: (UInt64, BlockStatusFlags) -> Bool) throws(BlockExportError)

    /// A client entered transmission on this export.
    func clientAttached()
    /// A client left transmission on this export.
    func clientDetached()
}

extension BlockExport {
    /// A store that has no use for the hint reads as usual.
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64, splittable: Bool) throws(BlockExportError) {
        try read(into: buffer, at: offset)
    }

    /// A store that has no use for the hint writes as usual.
    public func write(_ data: UnsafeRawBufferPointer, at offset: UInt64, backlogged: Bool) throws(BlockExportError) {
        try write(data, at: offset)
    }
}

/// `base:allocation` flags for a run of the export.
public struct BlockStatusFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// NBD_STATE_HOLE: nothing is allocated for the run.
    public static let hole = BlockStatusFlags(rawValue: 1)
    /// NBD_STATE_ZERO: the run reads as zeros.
    public static let zero = BlockStatusFlags(rawValue: 2)
}

/// A failure the server answers with an NBD error code.
public struct BlockExportError: Error, Hashable, Sendable {
    /// The NBD error value (an errno number, as the protocol defines them).
    public var code: UInt32
    public var message: String

    public init(code: UInt32, _ message: String) {
        self.code = code
        self.message = message
    }

    public static func notPermitted(_ m: String) -> Self { .init(code: 1, m) }  // EPERM
    public static func io(_ m: String) -> Self { .init(code: 5, m) }  // EIO
    public static func outOfMemory(_ m: String) -> Self { .init(code: 12, m) }  // ENOMEM
    public static func invalid(_ m: String) -> Self { .init(code: 22, m) }  // EINVAL
    public static func noSpace(_ m: String) -> Self { .init(code: 28, m) }  // ENOSPC
    public static func overflow(_ m: String) -> Self { .init(code: 75, m) }  // EOVERFLOW
    public static func notSupported(_ m: String) -> Self { .init(code: 95, m) }  // ENOTSUP
    public static func shutdown(_ m: String) -> Self { .init(code: 108, m) }  // ESHUTDOWN
}
