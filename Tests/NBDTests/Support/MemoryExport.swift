import NBD
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A test export: bytes in an anonymous mapping (untouched pages cost nothing),
/// one lock, and page-granular allocation so block status has holes.
final class MemoryExport: BlockExport {
    static let pageSize = 4096

    enum PageState: UInt8 { case hole = 0, data = 1, zero = 2 }

    struct Storage {
        var pages: [PageState]
    }
    /// The mapping; every access to its bytes happens inside `storage.withLock`,
    /// which is what makes this unchecked pointer safe to share.
    nonisolated(unsafe) let base: UnsafeMutableRawPointer

    let name: String
    let exportDescription: String
    let size: UInt64
    private let storage: Mutex<Storage>
    private let mapping: UInt  // address of the mapping, for munmap
    /// Operations touching this page-aligned offset fail with EIO (error-path tests).
    let failingPage = Atomic<UInt64>(UInt64.max)
    let attached = Atomic<Int>(0)
    let flushes = Atomic<Int>(0)
    /// The offsets of writes the server marked backlogged, in the order served.
    let backloggedOffsets = Mutex<[UInt64]>([])

    init(name: String = "zram0", size: UInt64, description: String? = nil) {
        self.name = name
        self.size = size
        exportDescription = description ?? "\(size >> 20) MiB test"
        let len = Int(max(size, 1))
        let p = mmap(nil, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)!
        precondition(p != MAP_FAILED, "mmap failed")
        mapping = UInt(bitPattern: p)
        base = p
        storage = Mutex(Storage(pages: Array(repeating: .hole, count: (len + Self.pageSize - 1) / Self.pageSize)))
    }

    deinit {
        munmap(UnsafeMutableRawPointer(bitPattern: mapping), Int(max(size, 1)))
    }

    private func check(_ offset: UInt64, _ length: UInt64) throws(BlockExportError) {
        precondition(length <= size && offset <= size - length, "server passed an out-of-range request")
        let f = failingPage.load(ordering: .relaxed)
        if f != UInt64.max && offset < f + UInt64(Self.pageSize) && f < offset + max(length, 1) {
            throw .io("injected failure")
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(BlockExportError) {
        try check(offset, UInt64(buffer.count))
        storage.withLock { s in
            buffer.baseAddress!.copyMemory(from: self.base + Int(offset), byteCount: buffer.count)
        }
    }

    func write(_ data: UnsafeRawBufferPointer, at offset: UInt64) throws(BlockExportError) {
        try check(offset, UInt64(data.count))
        storage.withLock { s in
            (self.base + Int(offset)).copyMemory(from: data.baseAddress!, byteCount: data.count)
            for p in Int(offset) / Self.pageSize...(Int(offset) + data.count - 1) / Self.pageSize { s.pages[p] = .data }
        }
    }

    func write(_ data: UnsafeRawBufferPointer, at offset: UInt64, backlogged: Bool) throws(BlockExportError) {
        if backlogged { backloggedOffsets.withLock { $0.append(offset) } }
        try write(data, at: offset)
    }

    func trim(offset: UInt64, length: UInt64) throws(BlockExportError) {
        try writeZeroes(offset: offset, length: length, mayTrim: true)
    }

    func writeZeroes(offset: UInt64, length: UInt64, mayTrim: Bool) throws(BlockExportError) {
        try check(offset, length)
        storage.withLock { s in
            memset(self.base + Int(offset), 0, Int(length))
            let first = Int(offset) / Self.pageSize
            let last = (Int(offset) + Int(length) - 1) / Self.pageSize
            for p in first...last {
                let start = p * Self.pageSize
                let whole = start >= Int(offset) && start + Self.pageSize <= Int(offset) + Int(length)
                if whole {
                    s.pages[p] = mayTrim ? .hole : .zero
                } else if s.pages[p] == .hole {
                    // A partial page of a hole stays a hole: it already reads as zeros.
                }
            }
        }
    }

    func flush() throws(BlockExportError) {
        flushes.add(1, ordering: .relaxed)
    }

    func blockStatus(offset: UInt64, length: UInt64, _ body: (UInt64, BlockStatusFlags) -> Bool) throws(BlockExportError) {
        try check(offset, length)
        let runs: [(UInt64, BlockStatusFlags)] = storage.withLock { s in
            var runs: [(UInt64, BlockStatusFlags)] = []
            var at = offset
            let end = offset + length
            while at < end {
                let p = Int(at / UInt64(Self.pageSize))
                let pageEnd = min(UInt64(p + 1) * UInt64(Self.pageSize), end)
                let flags: BlockStatusFlags =
                    switch s.pages[p] {
                    case .hole: [.hole, .zero]
                    case .zero: [.zero]
                    case .data: []
                    }
                if let last = runs.last, last.1 == flags {
                    runs[runs.count - 1].0 += pageEnd - at
                } else {
                    runs.append((pageEnd - at, flags))
                }
                at = pageEnd
            }
            return runs
        }
        for r in runs where !body(r.0, r.1) { return }
    }

    func clientAttached() { attached.add(1, ordering: .relaxed) }
    func clientDetached() { attached.subtract(1, ordering: .relaxed) }

    /// Direct access for checks.
    func bytes(at offset: Int, count: Int) -> [UInt8] {
        storage.withLock { s in Array(UnsafeRawBufferPointer(start: self.base + offset, count: count)) }
    }

    func pageState(_ page: Int) -> PageState { storage.withLock { $0.pages[page] } }
}
