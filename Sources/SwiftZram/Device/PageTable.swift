#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// The device's page table: one `PageSlot` per 4 KiB page, allocated lazily
/// in chunks so that an empty device costs only the chunk directory
/// (8 bytes per 4 MiB of disksize, 0.0002 %), where the kernel allocates
/// 16 bytes per page (0.39 %) up front.
///
/// Each slot has its own lock bit; there is no table-wide lock on the data path.
// @unchecked: the directory pointer never changes after init, its entries are
// atomics, and a slot's payload is touched only under that slot's lock bit.
final class PageTable: @unchecked Sendable {
    /// Pages per lazily allocated chunk (16 KiB of slots).
    static let pagesPerChunk = 1024
    static let chunkShift = 10

    let pageCount: Int
    /// Chunk directory: each entry is the address of a chunk of slots, or 0.
    private let directory: UnsafeMutablePointer<Atomic<Int>>
    private let chunkCount: Int
    /// Bytes held by allocated chunks (RSS cost of the table).
    private let chunkBytes = Atomic<Int>(0)

    init(pageCount: Int) {
        self.pageCount = pageCount
        chunkCount = (pageCount + Self.pagesPerChunk - 1) >> Self.chunkShift
        directory = .allocate(capacity: max(chunkCount, 1))
        for i in 0..<max(chunkCount, 1) {
            (directory + i).initialize(to: Atomic(0))
        }
    }

    deinit {
        for i in 0..<chunkCount {
            let address = directory[i].load(ordering: .relaxed)
            if let chunk = UnsafeMutablePointer<PageSlot>(bitPattern: address) {
                chunk.deinitialize(count: Self.pagesPerChunk)
                chunk.deallocate()
            }
        }
        directory.deinitialize(count: max(chunkCount, 1))
        directory.deallocate()
    }

    /// Bytes of memory the table uses now (directory plus allocated chunks).
    var memoryUsed: Int {
        max(chunkCount, 1) * MemoryLayout<Int>.stride + chunkBytes.load(ordering: .relaxed)
    }

    /// The slot for `index` if its chunk exists; nil means the page was never written.
    @inline(__always)
    func existingSlot(_ index: Int) -> UnsafeMutablePointer<PageSlot>? {
        let address = directory[index >> Self.chunkShift].load(ordering: .acquiring)
        guard let chunk = UnsafeMutablePointer<PageSlot>(bitPattern: address) else { return nil }
        return chunk + (index & (Self.pagesPerChunk - 1))
    }

    /// The slot for `index`, allocating its chunk on first use.
    @inline(__always)
    func slot(_ index: Int) -> UnsafeMutablePointer<PageSlot> {
        existingSlot(index) ?? allocateChunk(for: index)
    }

    @inline(never)
    private func allocateChunk(for index: Int) -> UnsafeMutablePointer<PageSlot> {
        let chunk = UnsafeMutablePointer<PageSlot>.allocate(capacity: Self.pagesPerChunk)
        for i in 0..<Self.pagesPerChunk {
            (chunk + i).initialize(to: PageSlot())
        }
        let entry = directory + (index >> Self.chunkShift)
        let (won, current) = entry.pointee.compareExchange(
            expected: 0, desired: Int(bitPattern: chunk), ordering: .acquiringAndReleasing)
        if won {
            chunkBytes.add(Self.pagesPerChunk * MemoryLayout<PageSlot>.stride, ordering: .relaxed)
            return chunk + (index & (Self.pagesPerChunk - 1))
        }
        chunk.deinitialize(count: Self.pagesPerChunk)
        chunk.deallocate()
        return UnsafeMutablePointer<PageSlot>(bitPattern: current)! + (index & (Self.pagesPerChunk - 1))
    }

    /// Whether the chunk holding `index` was ever allocated.
    func chunkExists(containing index: Int) -> Bool { existingSlot(index) != nil }
}

extension UnsafeMutablePointer where Pointee == PageSlot {
    /// Takes the slot's lock bit and returns the state it guarded.
    /// Waits by spinning, then yielding: slots are held only for one page's work.
    @inline(__always)
    func lock() -> PageState {
        var spins = 0
        while true {
            let current = pointee.state.load(ordering: .relaxed)
            if current & PageState.lockBit == 0 {
                let (won, _) = pointee.state.weakCompareExchange(
                    expected: current, desired: current | PageState.lockBit,
                    successOrdering: .acquiring, failureOrdering: .relaxed)
                if won { return PageState(rawValue: current) }
            }
            spins &+= 1
            if spins > 64 { sched_yield() }
        }
    }

    /// Publishes `state` and releases the lock.
    @inline(__always)
    func unlock(setting state: PageState) {
        pointee.state.store(state.withoutLock.rawValue, ordering: .releasing)
    }

    /// The state without taking the lock (for block status and statistics).
    @inline(__always)
    var unlockedState: PageState {
        PageState(rawValue: pointee.state.load(ordering: .acquiring)).withoutLock
    }
}
