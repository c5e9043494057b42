import CLZ4

#if canImport(Glibc)
import Glibc
#endif

/// LZ4 fast mode with a reused `LZ4_stream_t`, and the LZ4 block decoder that lz4hc shares.
///
/// A page without a dictionary goes through `LZ4_compress_fast_extState`, the kernel's path.
/// Debian's liblz4.so does not export `LZ4_attach_dictionary`, so a dictionary is applied by
/// copying the pool's dictionary-loaded stream over the working stream and compressing with
/// `LZ4_compress_fast_continue` (what lz4frame did before `LZ4_attach_dictionary` existed).
extension CompressionStream {
    static func makeLZ4(
        level: Int32, buffers: UnsafeMutableRawPointer, dictionary: CompressionDictionary.Handles?
    ) -> CompressionStream? {
        let size = Int(LZ4_sizeofState())
        // LZ4_initStream makes the state "correctly initialized", which the fastReset
        // and streaming calls below require.
        guard let state = allocateAligned(size) else { return nil }
        guard LZ4_initStream(state, size) != nil else {
            free(state)
            return nil
        }
        return CompressionStream(
            algorithm: .lz4, level: level, buffers: buffers, state: state,
            zstdCompression: nil, zstdDecompression: nil, dictionary: dictionary)
    }

    /// - Returns: The compressed size, or 0 on failure.
    func compressLZ4(_ source: UnsafeRawPointer) -> Int {
        let input = source.assumingMemoryBound(to: CChar.self)
        let target = output.assumingMemoryBound(to: CChar.self)
        let capacity = Int32(Self.outputCapacity)
        let pageSize = Int32(Self.pageSize)
        let working = state!.assumingMemoryBound(to: LZ4_stream_t.self)
        guard let dictionary, let dictionaryStream = dictionary.lz4Stream else {
            // An independent block. This clears the state and, for inputs under 64 KiB,
            // uses LZ4's 16-bit table (faster than a fast reset plus `_continue`), as
            // the kernel's LZ4_compress_fast does.
            return Int(LZ4_compress_fast_extState(working, input, target, pageSize, capacity, level))
        }
        // A fresh working stream per page whose history is exactly the dictionary.
        working.update(from: dictionaryStream, count: 1)
        return Int(LZ4_compress_fast_continue(working, input, target, pageSize, capacity, level))
    }

    /// Decodes an LZ4 block (from lz4 or lz4hc), with the dictionary if the pool has one.
    func decompressLZ4(
        _ source: UnsafeRawPointer, _ sourceCount: Int, into destination: UnsafeMutableRawPointer,
        _ destinationCount: Int
    ) -> Bool {
        let input = source.assumingMemoryBound(to: CChar.self)
        let target = destination.assumingMemoryBound(to: CChar.self)
        let decoded: Int32
        if let dictionary, let bytes = dictionary.lz4Bytes {
            decoded = LZ4_decompress_safe_usingDict(
                input, target, Int32(sourceCount), Int32(destinationCount),
                bytes.assumingMemoryBound(to: CChar.self), dictionary.lz4Count)
        } else {
            decoded = LZ4_decompress_safe(input, target, Int32(sourceCount), Int32(destinationCount))
        }
        return Int(decoded) == destinationCount
    }
}
