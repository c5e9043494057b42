#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Replies waiting to be sent, as one iovec list: headers and small READ data
/// live in an arena, large READ data in pooled buffers. `flush` sends it all with
/// as few sends as possible. Owned by one connection thread.
final class ReplyQueue {
    let arena: UnsafeMutableRawPointer
    let capacity: Int
    private(set) var used = 0
    private let iov: UnsafeMutablePointer<iovec>
    static let iovCapacity = 512
    private(set) var iovCount = 0
    private var held: [PooledBuffer] = []
    private let pool: BufferPool

    init(capacity: Int, pool: BufferPool) {
        self.capacity = capacity
        self.pool = pool
        arena = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 4096)
        iov = .allocate(capacity: Self.iovCapacity)
        held.reserveCapacity(4)
    }

    deinit {
        for b in held { pool.release(b) }
        arena.deallocate()
        iov.deallocate()
    }

    /// Free arena bytes.
    var free: Int { capacity - used }
    var isEmpty: Bool { iovCount == 0 }
    /// Whether another reply might not fit the iovec list or holding list.
    var shouldFlush: Bool { iovCount >= Self.iovCapacity - 140 || held.count >= 4 }

    /// Where the next `count` arena bytes go; `commit` publishes them.
    @inline(__always)
    func tail() -> UnsafeMutableRawPointer { arena + used }

    /// Queues the next `count` arena bytes (written at `tail()`).
    @inline(__always)
    func commit(_ count: Int) {
        precondition(count <= free, "reply overruns the arena")
        let p = arena + used
        if iovCount > 0, let last = iov[iovCount - 1].iov_base, last + iov[iovCount - 1].iov_len == p {
            iov[iovCount - 1].iov_len += count
        } else {
            iov[iovCount] = iovec(iov_base: p, iov_len: count)
            iovCount += 1
        }
        used += count
    }

    /// Queues bytes outside the arena (inside a held buffer).
    func appendExternal(_ p: UnsafeMutableRawPointer, _ count: Int) {
        iov[iovCount] = iovec(iov_base: p, iov_len: count)
        iovCount += 1
    }

    /// Keeps a pooled buffer alive until the next flush, then returns it to the pool.
    func hold(_ b: PooledBuffer) { held.append(b) }

    struct Mark {
        var used: Int
        var iovCount: Int
        var lastLength: Int
        var held: Int
    }

    /// A point to roll back to when a reply fails half-built.
    func mark() -> Mark {
        Mark(used: used, iovCount: iovCount, lastLength: iovCount > 0 ? iov[iovCount - 1].iov_len : 0, held: held.count)
    }

    func rollback(to m: Mark) {
        used = m.used
        iovCount = m.iovCount
        if iovCount > 0 { iov[iovCount - 1].iov_len = m.lastLength }
        while held.count > m.held { pool.release(held.removeLast()) }
    }

    /// Sends everything queued; false when the transport failed.
    func flush<Transport: ConnectionTransport>(to transport: Transport) -> Bool {
        defer {
            used = 0
            iovCount = 0
            for b in held { pool.release(b) }
            held.removeAll(keepingCapacity: true)
        }
        if iovCount == 0 { return true }
        if iovCount == 1 { return transport.send(UnsafeRawBufferPointer(start: iov[0].iov_base, count: iov[0].iov_len)) }
        return transport.send(vectors: iov, count: iovCount)
    }
}
