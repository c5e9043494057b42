import CLZO

#if canImport(Glibc)
import Glibc
#endif

/// lzo1x-1 from liblzo2, with reused `LZO1X_1_MEM_COMPRESS` work memory.
extension CompressionStream {
    /// liblzo2 must be initialised once per process before use; `lzo_init` is idempotent.
    static let lzoReady: Bool = clzo_init() == LZO_E_OK

    static func makeLZO(buffers: UnsafeMutableRawPointer) -> CompressionStream? {
        guard lzoReady, let state = allocateAligned(Int(clzo_lzo1x_1_mem_compress())) else {
            return nil
        }
        return CompressionStream(
            algorithm: .lzo, level: 1, buffers: buffers, state: state,
            zstdCompression: nil, zstdDecompression: nil, dictionary: nil)
    }

    /// - Returns: The compressed size, or 0 on failure.
    func compressLZO(_ source: UnsafeRawPointer) -> Int {
        var written: lzo_uint = 0
        let status = lzo1x_1_compress(
            UnsafeMutableRawPointer(mutating: source).assumingMemoryBound(to: UInt8.self),
            lzo_uint(Self.pageSize), output.assumingMemoryBound(to: UInt8.self), &written, state)
        return status == LZO_E_OK ? Int(written) : 0
    }

    /// Decodes with `lzo1x_decompress_safe`, which checks both input and output bounds.
    func decompressLZO(
        _ source: UnsafeRawPointer, _ sourceCount: Int, into destination: UnsafeMutableRawPointer,
        _ destinationCount: Int
    ) -> Bool {
        var decoded = lzo_uint(destinationCount)
        let status = lzo1x_decompress_safe(
            UnsafeMutableRawPointer(mutating: source).assumingMemoryBound(to: UInt8.self),
            lzo_uint(sourceCount), destination.assumingMemoryBound(to: UInt8.self), &decoded, nil)
        return status == LZO_E_OK && Int(decoded) == destinationCount
    }
}
