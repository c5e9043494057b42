import CLZ4

#if canImport(Glibc)
import Glibc
#endif

/// LZ4 high-compression mode (levels 1...12) with a reused `LZ4_streamHC_t`.
/// Its output is an ordinary LZ4 block, decoded by `decompressLZ4`.
///
/// `LZ4_resetStreamHC_fast` + `LZ4_compress_HC_continue` is what the static-linking-only
/// `LZ4_compress_HC_extStateHC_fastReset` does, which Debian's liblz4.so does not export;
/// the plain `LZ4_compress_HC_extStateHC` would clear the 256 KiB state on every page.
extension CompressionStream {
    static func makeLZ4HC(level: Int32, buffers: UnsafeMutableRawPointer) -> CompressionStream? {
        let size = Int(LZ4_sizeofStateHC())
        guard let state = allocateAligned(size) else { return nil }
        guard LZ4_initStreamHC(state, size) != nil else {
            free(state)
            return nil
        }
        return CompressionStream(
            algorithm: .lz4hc, level: level, buffers: buffers, state: state,
            zstdCompression: nil, zstdDecompression: nil, dictionary: nil)
    }

    /// - Returns: The compressed size, or 0 on failure.
    func compressLZ4HC(_ source: UnsafeRawPointer) -> Int {
        let working = state!.assumingMemoryBound(to: LZ4_streamHC_t.self)
        LZ4_resetStreamHC_fast(working, level)
        return Int(
            LZ4_compress_HC_continue(
                working, source.assumingMemoryBound(to: CChar.self),
                output.assumingMemoryBound(to: CChar.self), Int32(Self.pageSize),
                Int32(Self.outputCapacity)))
    }
}
