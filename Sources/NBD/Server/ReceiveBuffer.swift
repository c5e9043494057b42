/// A connection's receive buffer: requests are parsed where they landed.
///
/// Bytes `start..<end` are received and not yet parsed; `end..<capacity` is free.
struct ReceiveBuffer: ~Copyable {
    let base: UnsafeMutableRawPointer
    let capacity: Int
    private(set) var start = 0
    private(set) var end = 0

    init(capacity: Int) {
        self.capacity = capacity
        base = .allocate(byteCount: capacity, alignment: 4096)
    }

    deinit { base.deallocate() }

    /// Received bytes not parsed yet.
    @inline(__always)
    var unparsedCount: Int { end - start }

    /// The first unparsed byte.
    @inline(__always)
    var unparsed: UnsafeMutableRawPointer { base + start }

    /// Where the next receive stores its bytes.
    @inline(__always)
    var freeSpace: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: base + end, count: capacity - end) }

    /// Marks `count` bytes as parsed.
    @inline(__always)
    mutating func consume(_ count: Int) {
        precondition(count <= unparsedCount, "consumed more than was received")
        start += count
    }

    /// Marks `count` bytes at `freeSpace` as received.
    @inline(__always)
    mutating func didReceive(_ count: Int) {
        precondition(count <= capacity - end, "received past the buffer")
        end += count
    }

    /// Stores bytes that arrived before transmission began (pipelined after the handshake).
    mutating func append(_ bytes: [UInt8]) {
        precondition(bytes.count <= capacity - end, "handshake leftover larger than the receive buffer")
        bytes.withUnsafeBytes { b in
            if let source = b.baseAddress { (base + end).copyMemory(from: source, byteCount: b.count) }
        }
        end += bytes.count
    }

    /// Moves up to `count` unparsed bytes to `destination` (or drops them when nil); returns how many.
    mutating func take(upTo count: Int, into destination: UnsafeMutableRawPointer?) -> Int {
        let n = min(unparsedCount, count)
        if let destination, n > 0 { destination.copyMemory(from: unparsed, byteCount: n) }
        start += n
        return n
    }

    /// Makes room before the next receive: rewinds when everything is parsed, and moves a
    /// partial request of `needed` bytes to the front when it would not fit behind `start`.
    mutating func makeRoom(forRequestOf needed: Int) {
        if start == end {
            start = 0
            end = 0
        } else if start + needed > capacity || end == capacity {
            base.copyMemory(from: base + start, byteCount: end - start)
            end -= start
            start = 0
        }
    }
}
