import NBD

#if canImport(Glibc)
import Glibc
#endif

/// A flat in-memory export, so that the benchmark measures the protocol path and
/// nothing else (the store path has its own benchmarks).
final class MemoryExport: BlockExport {
    let name: String
    let exportDescription = "benchmark memory"
    let size: UInt64
    // Written and read by the connection thread only, at ranges the server has checked.
    private nonisolated(unsafe) let bytes: UnsafeMutableRawBufferPointer

    init(name: String, size: Int) {
        self.name = name
        self.size = UInt64(size)
        bytes = .allocate(byteCount: size, alignment: 4096)
        bytes.initializeMemory(as: UInt8.self, repeating: 0)
    }

    deinit { bytes.deallocate() }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(BlockExportError) {
        buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[Int(offset)..<Int(offset) + buffer.count]))
    }

    func write(_ data: UnsafeRawBufferPointer, at offset: UInt64) throws(BlockExportError) {
        UnsafeMutableRawBufferPointer(rebasing: bytes[Int(offset)..<Int(offset) + data.count]).copyMemory(from: data)
    }

    func trim(offset: UInt64, length: UInt64) throws(BlockExportError) {
        try writeZeroes(offset: offset, length: length, mayTrim: true)
    }

    func writeZeroes(offset: UInt64, length: UInt64, mayTrim: Bool) throws(BlockExportError) {
        memset(bytes.baseAddress! + Int(offset), 0, Int(length))
    }

    func flush() throws(BlockExportError) {}

    func blockStatus(offset: UInt64, length: UInt64, _ body: (UInt64, BlockStatusFlags) -> Bool) throws(BlockExportError) {
        _ = body(length, [])
    }

    func clientAttached() {}
    func clientDetached() {}
}
