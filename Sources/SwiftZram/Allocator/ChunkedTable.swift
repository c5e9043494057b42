#if canImport(Glibc)
import Glibc
#endif

/// A growable table of plain values whose elements never move: storage is a
/// directory of fixed-size chunks (1024 elements each unless the owner picks
/// another power of two), allocated one at a time as the table grows. Only
/// the small directory is ever reallocated.
///
/// Used for per-class metadata (handle locations, zspage descriptors) that
/// must grow lazily without a per-object allocation. Not thread-safe: the
/// owner (a size class) guards it with its lock.
struct ChunkedTable<Element: BitwiseCopyable>: ~Copyable {
    /// log2 of the elements per chunk.
    let chunkShift: Int
    var chunkLength: Int { 1 << chunkShift }

    private var directory: UnsafeMutablePointer<UnsafeMutablePointer<Element>>?
    private var directoryCapacity = 0
    private(set) var chunkCount = 0

    init(chunkShift: Int = 10) {
        precondition((0...20).contains(chunkShift), "chunk of 2^\(chunkShift) elements")
        self.chunkShift = chunkShift
    }

    /// Elements addressable without growing.
    var capacity: Int { chunkCount << chunkShift }

    /// Adds one chunk of uninitialised elements.
    ///
    /// - Returns: false if the OS refused memory (the table is unchanged).
    /// - Complexity: amortised O(1).
    mutating func grow() -> Bool {
        if chunkCount == directoryCapacity {
            let newCapacity = max(16, directoryCapacity * 2)
            guard
                let raw = realloc(
                    directory.map { UnsafeMutableRawPointer($0) },
                    newCapacity * MemoryLayout<UnsafeMutablePointer<Element>>.stride)
            else { return false }
            directory = raw.assumingMemoryBound(to: UnsafeMutablePointer<Element>.self)
            directoryCapacity = newCapacity
        }
        guard let chunk = malloc(chunkLength * MemoryLayout<Element>.stride) else { return false }
        directory![chunkCount] = chunk.bindMemory(to: Element.self, capacity: chunkLength)
        chunkCount += 1
        return true
    }

    /// The element at `index`, which must be below ``capacity``.
    @inline(__always)
    func pointer(_ index: Int) -> UnsafeMutablePointer<Element> {
        precondition(index >= 0 && index < capacity, "ChunkedTable index \(index) beyond capacity \(capacity)")
        return directory.unsafelyUnwrapped[index >> chunkShift] + (index & (chunkLength - 1))
    }

    subscript(index: Int) -> Element {
        @inline(__always) get { pointer(index).pointee }
        @inline(__always) nonmutating set { pointer(index).pointee = newValue }
    }

    deinit {
        guard let directory else { return }
        for chunk in 0..<chunkCount { free(directory[chunk]) }
        free(directory)
    }
}
