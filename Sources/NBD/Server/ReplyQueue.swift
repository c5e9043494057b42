import Synchronization

/// Replies waiting to be sent, in one arena: headers and READ data are written
/// straight into it and `flush` sends it with one send.
///
/// The arena is also the connection's in-flight reply budget: a READ larger than
/// the free space is sent in pieces, each flushed before the next is read, and a
/// flush blocks while the client does not take its replies. A connection whose
/// client stops reading therefore stops reading requests too (backpressure), and
/// never holds more than its arena. Owned by one connection thread.
final class ReplyQueue {
    let arena: UnsafeMutableRawPointer
    let capacity: Int
    private(set) var used = 0
    private let accounting: ReplyBufferAccounting

    init(capacity: Int, accounting: ReplyBufferAccounting) {
        self.capacity = capacity
        self.accounting = accounting
        arena = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 4096)
        accounting.add(capacity)
    }

    deinit {
        arena.deallocate()
        accounting.add(-capacity)
    }

    /// Free arena bytes.
    @inline(__always)
    var free: Int { capacity - used }

    /// Where the next reply bytes go; `commit` queues them.
    @inline(__always)
    func tail() -> UnsafeMutableRawPointer { arena + used }

    /// Queues the next `count` arena bytes (written at `tail()`).
    @inline(__always)
    func commit(_ count: Int) {
        precondition(count <= free, "reply overruns the arena")
        used += count
    }

    /// A point to roll back to when a reply fails half-built (valid until the next flush).
    @inline(__always)
    func mark() -> Int { used }

    func rollback(to mark: Int) {
        precondition(mark <= used, "rollback past a flush")
        used = mark
    }

    /// Sends everything queued; false when the transport failed.
    func flush<Transport: ConnectionTransport>(to transport: Transport) -> Bool {
        defer { used = 0 }
        return used == 0 || transport.send(UnsafeRawBufferPointer(start: arena, count: used))
    }
}

/// Bytes held in reply arenas across a server's connections.
final class ReplyBufferAccounting: Sendable {
    private let bytes = Atomic<Int>(0)

    func add(_ count: Int) { bytes.add(count, ordering: .relaxed) }

    var current: Int { bytes.load(ordering: .relaxed) }
}
