#if canImport(Glibc)
import Glibc
#endif

/// A malloc-backed stack of words, doubled when full.
struct GrowableStack: ~Copyable {
    private var storage: UnsafeMutablePointer<UInt>?
    private var capacity = 0
    private(set) var count = 0

    init() {}

    mutating func push(_ value: UInt) -> Bool {
        if count == capacity {
            let newCapacity = max(64, capacity * 2)
            guard let raw = realloc(storage.map { UnsafeMutableRawPointer($0) }, newCapacity * MemoryLayout<UInt>.stride)
            else { return false }
            storage = raw.bindMemory(to: UInt.self, capacity: newCapacity)
            capacity = newCapacity
        }
        storage.unsafelyUnwrapped[count] = value
        count += 1
        return true
    }

    mutating func pop() -> UInt? {
        guard count > 0 else { return nil }
        count -= 1
        return storage.unsafelyUnwrapped[count]
    }

    subscript(index: Int) -> UInt {
        precondition(index >= 0 && index < count, "stack index out of range")
        return storage.unsafelyUnwrapped[index]
    }

    deinit { free(storage) }
}
