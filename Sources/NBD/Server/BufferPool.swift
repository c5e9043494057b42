import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A page-aligned buffer with one owner at a time.
///
/// `@unchecked Sendable`: the pool hands each buffer to exactly one
/// connection and takes it back on `release`; nobody else holds the pointer.
struct PooledBuffer: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let capacity: Int
    let sizeClass: Int
}

/// Large buffers for payloads that do not fit a connection's own buffers.
///
/// Power-of-two size classes from 1 MiB up to the payload limit; released
/// buffers are kept for reuse, so steady-state large I/O allocates nothing.
/// Bytes handed out at once are bounded by `budget`: past it `acquire`
/// returns nil and the request is answered with ENOMEM.
final class BufferPool: Sendable {
    static let smallestClassShift = 20

    let budget: Int
    let maxCachedPerClass: Int
    private let state: Mutex<State>

    private struct State {
        var free: [[PooledBuffer]]
        var outstanding = 0
    }

    init(budget: Int, maxBufferSize: Int, maxCachedPerClass: Int = 4) {
        self.budget = budget
        self.maxCachedPerClass = maxCachedPerClass
        var classes = 1
        while (1 << (Self.smallestClassShift + classes - 1)) < maxBufferSize { classes += 1 }
        state = Mutex(State(free: Array(repeating: [], count: classes)))
    }

    deinit {
        state.withLock { s in
            for list in s.free { for b in list { free(b.base) } }
            s.free = []
        }
    }

    /// A buffer of at least `size` bytes, or nil when over budget or too large.
    func acquire(_ size: Int) -> PooledBuffer? {
        var c = 0
        while (1 << (Self.smallestClassShift + c)) < size { c += 1 }
        let capacity = 1 << (Self.smallestClassShift + c)
        enum Outcome { case refused, cached(PooledBuffer), allocate }
        let outcome: Outcome = state.withLock { s in
            guard c < s.free.count, s.outstanding + capacity <= budget else { return .refused }
            s.outstanding += capacity
            if let b = s.free[c].popLast() { return .cached(b) }
            return .allocate
        }
        switch outcome {
        case .refused: return nil
        case .cached(let b): return b
        case .allocate: break
        }
        var p: UnsafeMutableRawPointer?
        guard posix_memalign(&p, 4096, capacity) == 0, let p else {
            state.withLock { $0.outstanding -= capacity }
            return nil
        }
        return PooledBuffer(base: p, capacity: capacity, sizeClass: c)
    }

    /// Returns a buffer to the pool.
    func release(_ b: PooledBuffer) {
        let keep = state.withLock { s in
            s.outstanding -= b.capacity
            guard s.free[b.sizeClass].count < maxCachedPerClass else { return false }
            s.free[b.sizeClass].append(b)
            return true
        }
        if !keep { free(b.base) }
    }

    /// Bytes currently handed out.
    var outstandingBytes: Int { state.withLock { $0.outstanding } }
}
