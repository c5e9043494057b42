#if canImport(Glibc)
import Glibc
#endif

/// `streams` compression streams, like zram's per-CPU zcomp streams.
///
/// Every stream is allocated up front; ``withStream(_:)`` lends one without allocating.
///
/// `@unchecked Sendable` is safe because every stored property is immutable after
/// init except the memory behind `streams`, and a stream's memory is only touched
/// by the one thread that holds its bit in `leases`. Taking a bit has acquire
/// ordering and returning it release ordering, so one holder's writes happen before
/// the next holder's reads. The shared dictionary is only read after init.
public final class CompressorPool: @unchecked Sendable {
    public let parameters: CompressionParameters
    public let streamCount: Int
    private let streams: UnsafeMutablePointer<CompressionStream>
    private let leases: StreamLeases
    /// Kept alive for the streams, which hold raw pointers into it.
    private let dictionary: CompressionDictionary?

    /// Allocates `streams` streams with their contexts and buffers.
    /// - Parameters:
    ///   - parameters: Algorithm, level and optional dictionary.
    ///   - streams: How many threads can compress at once, 1...64.
    /// - Throws: `.outOfMemory` if a context cannot be created; `.invalidArgument` for a
    ///   bad dictionary, level or stream count.
    public init(parameters: CompressionParameters, streams: Int) throws(ZramError) {
        guard (1...StreamLeases.capacity).contains(streams) else {
            throw .invalid("stream count \(streams) is outside 1...\(StreamLeases.capacity)")
        }
        // The fields are public vars, so re-check what CompressionParameters.init checked.
        let parameters = try CompressionParameters(
            algorithm: parameters.algorithm, level: parameters.level,
            dictionary: parameters.dictionary)
        let dictionary = try parameters.dictionary.map { bytes throws(ZramError) in
            try CompressionDictionary(bytes, algorithm: parameters.algorithm, level: parameters.level)
        }
        guard let leases = StreamLeases(count: streams) else {
            throw ZramError(.outOfMemory, "cannot allocate the stream leases")
        }
        guard let raw = malloc(streams * MemoryLayout<CompressionStream>.stride) else {
            throw ZramError(.outOfMemory, "cannot allocate \(streams) compression streams")
        }
        let storage = raw.bindMemory(to: CompressionStream.self, capacity: streams)
        for index in 0..<streams {
            do {
                let stream = try CompressionStream.make(
                    parameters: parameters, dictionary: dictionary?.handles)
                (storage + index).initialize(to: stream)
            } catch {
                for made in 0..<index { storage[made].deallocate() }
                free(storage)
                throw error
            }
        }
        self.parameters = parameters
        self.streamCount = streams
        self.streams = storage
        self.leases = leases
        self.dictionary = dictionary
    }

    deinit {
        for index in 0..<streamCount { streams[index].deallocate() }
        free(streams)
    }

    /// Lends a free stream to `body` for its duration. If all are busy, waits
    /// (brief spinning, then yielding, then sleeping) until one is free.
    ///
    /// Do not call it again from inside `body` on the same pool: with every stream
    /// held by the caller that would wait forever.
    /// - Returns: What `body` returns.
    public func withStream<R, E: Error>(_ body: (CompressionStream) throws(E) -> R) throws(E) -> R {
        let index = leases.acquire()
        defer { leases.release(index) }
        return try body(streams[index])
    }
}
