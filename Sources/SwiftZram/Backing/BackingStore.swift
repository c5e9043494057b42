/// Where written-back pages go: a block device, a regular file or a remote NBD
/// export (zram's `backing_dev`). The device decides what goes where; a store
/// only moves bytes.
///
/// Calls may come from several threads at once, each for a different range.
///
/// Alignment: requests whose offset, length and buffer address are multiples of 4 KiB
/// (whole blocks from page-aligned buffers) may bypass the page cache (`O_DIRECT`).
/// Any other request works too, but a file store then serves it through the page
/// cache, which keeps a copy in RAM; and a block must not be written both ways at once.
public protocol BackingStore: AnyObject, Sendable {
    /// What `backing_dev` reads back: the path or URI it was opened with.
    var name: String { get }

    /// Usable bytes. Space past it is never addressed.
    var capacity: UInt64 { get }

    /// Reads `buffer.count` bytes at `offset`.
    /// - Throws: `EIO` on an I/O error or a short read.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(ZramError)

    /// Writes all of `buffer` at `offset`.
    /// - Throws: `EIO` on an I/O error or a short write, `ENOSPC` if the medium is full.
    func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws(ZramError)

    /// Gives the range's space back to the medium (punch a hole, BLKDISCARD, NBD trim).
    /// Best effort: the range is never read again before it is written.
    func discard(at offset: UInt64, length: UInt64)

    /// Makes room for `bytes` when the store can grow (a file sized to disksize).
    /// A fixed-size store (a block device, an NBD export) keeps its size even when it
    /// is smaller, as the kernel's `backing_dev` does: writeback then fails with
    /// `ENOSPC` once `capacity` is used up.
    /// - Throws: `ENOSPC` when the medium cannot hold `bytes`.
    func prepare(capacity bytes: UInt64) throws(ZramError)

    /// Releases the file descriptor or connection. Called once, after the last I/O.
    func close()
}

/// Opens the backing store a `backing_dev` value names: a path, or a URI for
/// stores that live outside SwiftZram (an NBD export through libnbd).
public typealias BackingStoreOpener = @Sendable (_ name: String) throws(ZramError) -> any BackingStore
