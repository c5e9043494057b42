import CLZ4

#if canImport(Glibc)
import Glibc
#endif

/// LZ4 high-compression mode (levels 1...12) with a reused `LZ4_streamHC_t`.
/// Its output is an ordinary LZ4 block, decoded by `decompressLZ4`.
extension CompressionStream {
    static func makeLZ4HC(level: Int32, buffers: UnsafeMutableRawPointer) -> CompressionStream? {
        let size = Int(LZ4_sizeofStateHC())
        guard let state = aligned_alloc(64, size) else { return nil }
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
        Int(
            LZ4_compress_HC_extStateHC_fastReset(
                state, source.assumingMemoryBound(to: CChar.self),
                output.assumingMemoryBound(to: CChar.self), Int32(Self.pageSize),
                Int32(Self.outputCapacity), level))
    }
}
