#if canImport(Glibc)
import Glibc
#endif

/// Aligned memory (cache lines by default) for codec states and buffers, or `nil` if
/// the system refuses it (so callers can report `ENOMEM` instead of trapping). Free with `free`.
///
/// `aligned_alloc` requires the size to be a multiple of the alignment, so it is rounded up.
func allocateAligned(_ byteCount: Int, alignment: Int = 64) -> UnsafeMutableRawPointer? {
    return aligned_alloc(alignment, (max(byteCount, 1) + alignment - 1) / alignment * alignment)
}
