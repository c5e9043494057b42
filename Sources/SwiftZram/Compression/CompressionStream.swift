#if canImport(Glibc)
import Glibc
#endif

/// One compression stream (zram's per-CPU `zcomp_strm`): its codec contexts, a
/// two-page output buffer and a scratch page, all allocated once by its pool.
///
/// A stream is a handful of raw pointers, so passing it around costs no ARC. It is
/// only valid inside ``CompressorPool/withStream(_:)``, on the thread that holds it.
public struct CompressionStream: BitwiseCopyable {
    /// The size of a page: the unit every stream compresses.
    public static let pageSize = 4096
    /// The size of the output buffer: two pages, like the kernel's, so even
    /// incompressible data fits with the codecs' worst-case expansion.
    public static let outputCapacity = 2 * pageSize

    let algorithm: CompressionAlgorithm
    /// The level, or the acceleration for lz4.
    let level: Int32
    /// ``workPage`` followed by the output buffer, in one allocation.
    let buffers: UnsafeMutableRawPointer
    /// The codec's reused state: `LZ4_stream_t` (lz4), `LZ4_streamHC_t` (lz4hc), or the
    /// `LZO1X_1_MEM_COMPRESS` work memory (lzo). `nil` for zstd.
    let state: UnsafeMutableRawPointer?
    /// zstd's `ZSTD_CCtx` and `ZSTD_DCtx`.
    let zstdCompression: OpaquePointer?
    let zstdDecompression: OpaquePointer?
    /// The pool's shared dictionary, if any.
    let dictionary: CompressionDictionary.Handles?

    /// A 4096-byte scratch page the caller may use freely while holding the stream
    /// (read-modify-write of partial pages).
    public var workPage: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: buffers, count: Self.pageSize)
    }

    var output: UnsafeMutableRawPointer { buffers + Self.pageSize }

    /// Compresses exactly one 4096-byte page into this stream's output buffer.
    ///
    /// Never fails for valid input. Incompressible data comes back at least a page
    /// long; the caller decides whether the result is too big to keep (zram stores
    /// pages of 3625 bytes or more raw).
    /// - Parameter page: 4096 bytes; must not overlap the output buffer (``workPage`` is fine).
    /// - Returns: The compressed bytes, valid until the next `compress` on this stream.
    public func compress(_ page: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        precondition(
            page.count == Self.pageSize,
            "compress takes exactly one \(Self.pageSize)-byte page, not \(page.count) bytes")
        let source = page.baseAddress!
        let count =
            switch algorithm {
            case .lz4: compressLZ4(source)
            case .lz4hc: compressLZ4HC(source)
            case .lzo: compressLZO(source)
            case .zstd: compressZstd(source)
            }
        // A codec error cannot happen with a two-page output buffer; should it anyway,
        // report more than a page so the caller stores the page raw.
        return UnsafeRawBufferPointer(start: output, count: count > 0 ? count : Self.outputCapacity)
    }

    /// Decompresses `source` straight into `destination`.
    /// - Parameters:
    ///   - source: Data from ``compress(_:)`` on a stream of the same pool (or of one
    ///     with the same algorithm and dictionary).
    ///   - destination: Where the page goes, normally 4096 bytes.
    /// - Returns: `false` if the data is corrupt or does not decompress to exactly
    ///   `destination.count` bytes; `destination` may then hold garbage.
    public func decompress(
        _ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer
    ) -> Bool {
        guard let input = source.baseAddress, let target = destination.baseAddress,
            source.count <= Int(Int32.max), destination.count <= Int(Int32.max)
        else { return false }
        switch algorithm {
        case .lz4, .lz4hc: return decompressLZ4(input, source.count, into: target, destination.count)
        case .lzo: return decompressLZO(input, source.count, into: target, destination.count)
        case .zstd: return decompressZstd(input, source.count, into: target, destination.count)
        }
    }
}

extension CompressionStream {
    /// Allocates a stream's buffers and codec contexts.
    /// - Throws: `.outOfMemory` if any of them cannot be had.
    static func make(
        parameters: CompressionParameters, dictionary: CompressionDictionary.Handles?
    ) throws(ZramError) -> CompressionStream {
        // Page-aligned, so writeback can read a backing store with O_DIRECT straight into them.
        guard let buffers = allocateAligned(pageSize + outputCapacity, alignment: pageSize) else {
            throw ZramError(.outOfMemory, "cannot allocate a compression stream's buffers")
        }
        let level = Int32(parameters.level)
        let made: CompressionStream?
        switch parameters.algorithm {
        case .lz4: made = makeLZ4(level: level, buffers: buffers, dictionary: dictionary)
        case .lz4hc: made = makeLZ4HC(level: level, buffers: buffers)
        case .lzo: made = makeLZO(buffers: buffers)
        case .zstd: made = makeZstd(level: level, buffers: buffers, dictionary: dictionary)
        }
        guard let stream = made else {
            free(buffers)
            throw ZramError(.outOfMemory, "cannot create a \(parameters.algorithm) compression context")
        }
        stream.warmUp()
        return stream
    }

    /// Runs one round trip so that codecs that size their workspace lazily (zstd) do
    /// it now, and no page ever pays for an allocation.
    private func warmUp() {
        let page = workPage
        for index in page.indices { page[index] = UInt8(truncatingIfNeeded: (index &* 7) % 251 / 3) }
        let compressed = compress(UnsafeRawBufferPointer(page))
        let restored = decompress(compressed, into: page)
        assert(restored, "\(algorithm) warm-up round trip failed")
        page.initializeMemory(as: UInt8.self, repeating: 0)
    }

    /// Frees everything `make` allocated. The pool calls it once, in its deinit.
    func deallocate() {
        free(state)
        freeZstdContexts()
        free(buffers)
    }
}
