import CZstd

/// Zstandard with a reused `ZSTD_CCtx`/`ZSTD_DCtx` per stream (plain `ZSTD_compress`
/// would allocate a context on every call), optionally with the pool's digested dictionary.
extension CompressionStream {
    static func makeZstd(
        level: Int32, buffers: UnsafeMutableRawPointer, dictionary: CompressionDictionary.Handles?
    ) -> CompressionStream? {
        guard let compression = ZSTD_createCCtx() else { return nil }
        guard let decompression = ZSTD_createDCtx() else {
            ZSTD_freeCCtx(compression)
            return nil
        }
        // Sticky parameters for ZSTD_compress2. The dictionary path takes its level
        // from the CDict instead. No dictionary ID in frames: the pool knows its dictionary.
        let levelSet = ZSTD_CCtx_setParameter(compression, ZSTD_c_compressionLevel, level)
        let dictIDSet = ZSTD_CCtx_setParameter(compression, ZSTD_c_dictIDFlag, 0)
        guard ZSTD_isError(levelSet) == 0, ZSTD_isError(dictIDSet) == 0 else {
            ZSTD_freeCCtx(compression)
            ZSTD_freeDCtx(decompression)
            return nil
        }
        return CompressionStream(
            algorithm: .zstd, level: level, buffers: buffers, state: nil,
            zstdCompression: compression, zstdDecompression: decompression, dictionary: dictionary)
    }

    /// - Returns: The compressed size, or 0 on failure.
    func compressZstd(_ source: UnsafeRawPointer) -> Int {
        let written =
            if let dictionary, let cdict = dictionary.zstdCompression {
                ZSTD_compress_usingCDict(
                    zstdCompression, output, Self.outputCapacity, source, Self.pageSize, cdict)
            } else {
                ZSTD_compress2(zstdCompression, output, Self.outputCapacity, source, Self.pageSize)
            }
        return ZSTD_isError(written) == 0 ? written : 0
    }

    func decompressZstd(
        _ source: UnsafeRawPointer, _ sourceCount: Int, into destination: UnsafeMutableRawPointer,
        _ destinationCount: Int
    ) -> Bool {
        let decoded =
            if let dictionary, let ddict = dictionary.zstdDecompression {
                ZSTD_decompress_usingDDict(
                    zstdDecompression, destination, destinationCount, source, sourceCount, ddict)
            } else {
                ZSTD_decompressDCtx(zstdDecompression, destination, destinationCount, source, sourceCount)
            }
        return ZSTD_isError(decoded) == 0 && decoded == destinationCount
    }

    func freeZstdContexts() {
        if let zstdCompression { ZSTD_freeCCtx(zstdCompression) }
        if let zstdDecompression { ZSTD_freeDCtx(zstdDecompression) }
    }
}
