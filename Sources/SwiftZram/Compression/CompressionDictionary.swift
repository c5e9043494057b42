import CLZ4
import CZstd

#if canImport(Glibc)
import Glibc
#endif

/// A dictionary (zram's `algorithm_params dict=PATH`) prepared once per pool and
/// read by every stream of that pool.
///
/// zstd gets a digested `ZSTD_CDict`/`ZSTD_DDict`; lz4 gets an `LZ4_stream_t` prepared
/// with `LZ4_loadDict`, which each stream copies over its working stream per page.
/// All of these are only read after creation, so sharing them between streams is safe.
final class CompressionDictionary {
    /// The raw pointers a stream needs; plain values, so a stream copies them without ARC.
    struct Handles: BitwiseCopyable {
        /// The bytes lz4 decompression refers back into (the last 64 KiB at most).
        var lz4Bytes: UnsafeRawPointer?
        var lz4Count: Int32 = 0
        /// The `LZ4_stream_t` loaded with the dictionary.
        var lz4Stream: UnsafeMutablePointer<LZ4_stream_t>?
        var zstdCompression: OpaquePointer?
        var zstdDecompression: OpaquePointer?
    }

    let handles: Handles
    /// Our own copy of the bytes: `LZ4_loadDict` keeps pointers into it.
    private let storage: UnsafeMutableRawPointer

    /// Prepares `bytes` for `algorithm`.
    /// - Throws: `.invalidArgument` if the library rejects the dictionary or the algorithm
    ///   takes none; `.outOfMemory` if memory for it cannot be had.
    init(_ bytes: [UInt8], algorithm: CompressionAlgorithm, level: Int) throws(ZramError) {
        guard algorithm.supportsDictionary else {
            throw .invalid("\(algorithm) does not support a dictionary")
        }
        guard !bytes.isEmpty, bytes.count <= Int(Int32.max) else {
            throw .invalid("a dictionary must hold 1 to \(Int32.max) bytes, not \(bytes.count)")
        }
        guard let storage = malloc(bytes.count) else {
            throw ZramError(.outOfMemory, "cannot allocate a \(bytes.count)-byte dictionary")
        }
        bytes.withUnsafeBytes { storage.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }

        var handles = Handles()
        switch algorithm {
        case .lz4:
            // LZ4 only ever looks 64 KiB back, and LZ4_loadDict keeps only the tail.
            let window = min(bytes.count, 64 * 1024)
            let tail = UnsafeRawPointer(storage) + (bytes.count - window)
            guard let raw = allocateAligned(MemoryLayout<LZ4_stream_t>.size),
                let stream = LZ4_initStream(raw, MemoryLayout<LZ4_stream_t>.size)
            else {
                free(storage)
                throw ZramError(.outOfMemory, "cannot allocate an lz4 dictionary stream")
            }
            _ = LZ4_loadDict(stream, tail.assumingMemoryBound(to: CChar.self), Int32(window))
            handles.lz4Stream = stream
            handles.lz4Bytes = tail
            handles.lz4Count = Int32(window)
        case .zstd:
            let cdict = ZSTD_createCDict(storage, bytes.count, Int32(level))
            let ddict = ZSTD_createDDict(storage, bytes.count)
            guard let cdict, let ddict else {
                ZSTD_freeCDict(cdict)
                ZSTD_freeDDict(ddict)
                free(storage)
                throw .invalid("zstd rejected the dictionary (\(bytes.count) bytes)")
            }
            handles.zstdCompression = cdict
            handles.zstdDecompression = ddict
        case .lzo, .lz4hc:
            preconditionFailure("supportsDictionary was checked above")
        }
        self.storage = storage
        self.handles = handles
    }

    deinit {
        free(handles.lz4Stream.map(UnsafeMutableRawPointer.init))
        ZSTD_freeCDict(handles.zstdCompression)
        ZSTD_freeDDict(handles.zstdDecompression)
        free(storage)
    }
}
