#if canImport(Glibc)
import Glibc
#endif
import Platform
import Synchronization

/// Threads that serve part of a large read beside the thread that asked for it,
/// so that a 1 MiB read decompresses on every core instead of one.
///
/// Writes need no helpers: a large write fills the compression queue and then
/// compresses inline, so its thread and the compressor thread already share it.
///
/// Helpers pay only where a core is free. An NBD connection serves its client on one
/// thread, which decompresses and sends while the client (fio: under half a core)
/// receives: on 2 CPUs one helper made 1 MiB reads 8-19 % faster, and no slower with
/// a CPU hog beside them (CHANGELOG, 2026-12-02). The FUSE export serves concurrent
/// requests on several queues at once, which already keeps the cores busy, and a
/// helper made its 1 MiB reads 9 % slower, so it reads unsplit (`splittable: false`).
///
/// One request at a time: the caller that wins `busy` posts a job (a byte range of
/// one request, cut into chunks of ``chunkPages`` pages), then claims chunks itself
/// as the helpers do, and waits until every chunk is done. A caller that finds the
/// helpers busy serves its request alone, so concurrent requests never wait for each
/// other here. Helpers take a compression stream only for a page they hold the lock
/// of, through the store's page operations (see the lock order in ZramStore+ReadAhead.swift).
///
/// Claiming is one compare-exchange on `cursor`, which packs the job's generation,
/// its chunk count and the next chunk. A helper reads the job only after it claimed
/// a chunk of it, and the caller returns only after every claimed chunk is done, so
/// a helper never reads a job being replaced.
///
/// The helpers touch the store only while its caller waits for them, under the
/// caller's shared hold of the device's lifecycle lock: reset (which holds it
/// exclusively) cannot run meanwhile, and stops the helpers only once no request is
/// in flight.
// @unchecked: `job` is written only by the caller holding `busy`, before it publishes
// the job through `cursor` (sequentially consistent), and read by helpers only after
// a successful claim on that `cursor` value; the rest is atomics, a mutex-guarded
// error, or pthread objects at fixed heap addresses.
final class RequestHelpers: @unchecked Sendable {
    /// Requests at least this long are split. Below it the work (about a microsecond
    /// per page) is no longer much more than waking a helper and handing it a chunk.
    static let minimumBytes = 64 << 10
    /// Pages a thread claims at a time: small enough that the caller rarely waits
    /// for a helper's last chunk, large enough that claims stay rare.
    static let chunkPages = 4
    /// The name of helper `index` in `top -H`, `ps -L` and `perf`.
    static func threadName(_ index: Int) -> String { "zram-split-\(index)" }

    /// One request's range: `buffer` holds the bytes of `offset..<offset + length`.
    private struct Job {
        /// Unretained: the caller holds the store until every chunk is done.
        var store: Unmanaged<ZramStore>?
        var buffer: UnsafeMutableRawPointer?
        var offset: UInt64 = 0
        var length = 0
    }

    /// At a fixed heap address, so threads share it without exclusivity checks.
    private let job: UnsafeMutablePointer<Job>
    private let busy = Atomic<Bool>(false)
    /// generation << 40 | chunk count << 20 | next chunk.
    private let cursor = Atomic<UInt64>(0)
    private static let fieldBits: UInt64 = 20
    private static let fieldMask: UInt64 = (1 << fieldBits) - 1
    /// The most chunks one job can have; longer requests are posted as several jobs.
    static let maximumChunks = Int(fieldMask)
    private let chunksDone = Atomic<Int>(0)
    /// Set while the caller sleeps until its chunks are done.
    private let callerAsleep = Atomic<Bool>(false)
    private let failed = Atomic<Bool>(false)
    private let firstError = Mutex<ZramError?>(nil)
    private let stopping = Atomic<Bool>(false)
    /// Helpers asleep (or about to sleep) until a job is posted.
    private let sleepers = Atomic<Int>(0)
    private let lock: UnsafeMutablePointer<pthread_mutex_t>
    private let posted: UnsafeMutablePointer<pthread_cond_t>
    private let finished: UnsafeMutablePointer<pthread_cond_t>
    private let threads: Mutex<[PosixThread]>

    /// Starts `count` helper threads.
    /// - Parameter threadStart: runs first on each thread (e.g. to mark it an I/O flusher).
    /// - Throws: `ENOMEM` if a thread cannot be started (those started are stopped).
    init(count: Int, threadStart: (@Sendable () -> Void)?) throws(ZramError) {
        precondition(count > 0, "request helpers need at least one thread")
        job = .allocate(capacity: 1)
        job.initialize(to: Job())
        lock = .allocate(capacity: 1)
        posted = .allocate(capacity: 1)
        finished = .allocate(capacity: 1)
        pthread_mutex_init(lock, nil)
        pthread_cond_init(posted, nil)
        pthread_cond_init(finished, nil)
        threads = Mutex([])
        var started: [PosixThread] = []
        for index in 1...count {
            do {
                started.append(
                    try PosixThread.spawn(name: Self.threadName(index)) { [self] in
                        threadStart?()
                        run()
                    })
            } catch {
                threads.withLock { $0 = started }
                stop()
                throw ZramError(.outOfMemory, "cannot start request helper thread \(index): \(error)")
            }
        }
        threads.withLock { $0 = started }
    }

    deinit {
        pthread_cond_destroy(finished)
        pthread_cond_destroy(posted)
        pthread_mutex_destroy(lock)
        finished.deallocate()
        posted.deallocate()
        lock.deallocate()
        job.deinitialize(count: 1)
        job.deallocate()
    }

    /// Stops and joins the helpers. Call when no request is in flight.
    func stop() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        pthread_mutex_lock(lock)
        pthread_cond_broadcast(posted)
        pthread_mutex_unlock(lock)
        let joining = threads.withLock { threads in
            defer { threads = [] }
            return threads
        }
        for thread in joining { thread.join() }
    }

    // MARK: The caller

    /// Reads `offset..<offset + length` of `store` into `buffer` with the helpers.
    /// - Returns: false, having done nothing, when the helpers serve another request.
    /// - Throws: the first error a page of the range met; other pages may have been read.
    @inline(never)
    func read(
        from store: ZramStore, into buffer: UnsafeMutableRawPointer, offset: UInt64, length: Int
    ) throws(ZramError) -> Bool {
        guard !busy.exchange(true, ordering: .acquiring) else { return false }
        defer { busy.store(false, ordering: .releasing) }
        let windowBytes = Self.maximumChunks * Self.chunkPages * pageSize
        var done = 0
        while done < length, !failed.load(ordering: .relaxed) {
            let count = min(windowBytes, length - done)
            let start = offset + UInt64(done)
            job.pointee = Job(store: Unmanaged.passUnretained(store), buffer: buffer + done, offset: start, length: count)
            let chunks = Self.chunks(offset: start, length: count)
            post(chunks: chunks)
            while claimAndServe() {}
            // Helpers finish the chunks they claimed; each is a few pages.
            var backoff = Backoff()
            while chunksDone.load(ordering: .acquiring) < chunks {
                guard backoff.spinOrYield() else {
                    sleep(untilDone: chunks)
                    break
                }
            }
            done += count
        }
        job.pointee.store = nil
        guard failed.exchange(false, ordering: .acquiring) else { return true }
        let error = firstError.withLock { error in
            defer { error = nil }
            return error
        }
        throw error ?? ZramError(.ioError, "a page of the request failed")
    }

    /// Chunks of ``chunkPages`` pages covering the range, aligned to the device's pages.
    @inline(__always)
    private static func chunks(offset: UInt64, length: Int) -> Int {
        let chunkBytes = UInt64(chunkPages * pageSize)
        let first = offset / chunkBytes
        let last = (offset + UInt64(length) - 1) / chunkBytes
        return Int(last - first) + 1
    }

    /// Sleeps until `chunks` chunks are done; the helper that finishes one wakes it.
    @inline(never)
    private func sleep(untilDone chunks: Int) {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        while true {
            // Sequentially consistent with the helpers' count and look at `callerAsleep`.
            callerAsleep.store(true, ordering: .sequentiallyConsistent)
            if chunksDone.load(ordering: .sequentiallyConsistent) >= chunks { break }
            pthread_cond_wait(finished, lock)
        }
        callerAsleep.store(false, ordering: .relaxed)
    }

    /// Jobs posted so far (modulo 2^24): each split request posts one per 4 GiB.
    var jobsPosted: UInt64 { cursor.load(ordering: .relaxed) >> (2 * Self.fieldBits) }

    private func post(chunks: Int) {
        chunksDone.store(0, ordering: .relaxed)
        let generation = (cursor.load(ordering: .relaxed) >> (2 * Self.fieldBits)) &+ 1
        cursor.store(generation << (2 * Self.fieldBits) | UInt64(chunks) << Self.fieldBits, ordering: .sequentiallyConsistent)
        if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
            // Taking the lock once orders this post with a helper between its last look
            // and its wait; waking after unlocking spares it a wait for the lock.
            pthread_mutex_lock(lock)
            pthread_mutex_unlock(lock)
            pthread_cond_broadcast(posted)
        }
    }

    // MARK: Claiming chunks (caller and helpers)

    /// Whether the job posted in `value` has a chunk left to claim.
    @inline(__always)
    private static func hasChunkLeft(_ value: UInt64) -> Bool {
        value & fieldMask < (value >> fieldBits) & fieldMask
    }

    /// Claims the next chunk of the posted job and serves it.
    /// - Returns: false when no chunk was left.
    @inline(__always)
    private func claimAndServe() -> Bool {
        var value = cursor.load(ordering: .sequentiallyConsistent)
        while Self.hasChunkLeft(value) {
            let (won, seen) = cursor.weakCompareExchange(
                expected: value, desired: value + 1, ordering: .sequentiallyConsistent)
            if won {
                serve(chunk: Int(value & Self.fieldMask))
                return true
            }
            value = seen
        }
        return false
    }

    /// Serves chunk `index` of the job (which stays posted until it is counted done).
    private func serve(chunk index: Int) {
        let job = job.pointee
        if !failed.load(ordering: .relaxed), let store = job.store, let buffer = job.buffer {
            let chunkBytes = UInt64(Self.chunkPages * pageSize)
            let end = job.offset + UInt64(job.length)
            let start = max(job.offset, (job.offset / chunkBytes + UInt64(index)) * chunkBytes)
            let stop = min(end, start - start % chunkBytes + chunkBytes)
            let bytes = UnsafeMutableRawBufferPointer(start: buffer + Int(start - job.offset), count: Int(stop - start))
            store._withUnsafeGuaranteedRef { store in
                do throws(ZramError) {
                    try store.readPieces(into: bytes, at: start)
                } catch {
                    record(error)
                }
            }
        }
        chunksDone.add(1, ordering: .sequentiallyConsistent)
        if callerAsleep.load(ordering: .sequentiallyConsistent) {
            pthread_mutex_lock(lock)
            pthread_cond_signal(finished)
            pthread_mutex_unlock(lock)
        }
    }

    @inline(never)
    private func record(_ error: ZramError) {
        firstError.withLock { first in
            if first == nil { first = error }
        }
        failed.store(true, ordering: .relaxed)
    }

    // MARK: The helpers

    /// Polling budget, as the compressor's (see `CompressionQueue.pollCreditPerPage`):
    /// each chunk served earns a helper this long to poll for the next job before it
    /// sleeps, so a stream of large requests finds it awake, and a lone one costs
    /// little more than the time spent serving it.
    static let pollCreditPerChunk: UInt64 = 5_000
    static let pollCreditMax: UInt64 = 200_000

    private func run() {
        var pollCredit: UInt64 = 0
        while waitForChunk(pollCredit: &pollCredit) {
            while claimAndServe() {
                pollCredit = min(Self.pollCreditMax, pollCredit + Self.pollCreditPerChunk)
            }
        }
    }

    /// Waits until a posted job has a chunk left: polls while `pollCredit` lasts
    /// (spending it), then sleeps. Each poll yields the CPU, so on a host with more
    /// runnable threads than cores the poller gives way to the threads doing work
    /// (the client and the connection's own thread among them).
    /// - Returns: false once stopping.
    private func waitForChunk(pollCredit: inout UInt64) -> Bool {
        let start = MonotonicClock.nanoseconds()
        var polls = 0
        while true {
            if stopping.load(ordering: .relaxed) { return false }
            if Self.hasChunkLeft(cursor.load(ordering: .relaxed)) {
                pollCredit -= min(pollCredit, MonotonicClock.nanoseconds() - start)
                return true
            }
            sched_yield()
            polls &+= 1
            guard polls & 7 == 0 else { continue }
            if MonotonicClock.nanoseconds() - start >= pollCredit { break }
        }
        pollCredit = 0
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        // Counted before the last look at `cursor`: a post either comes after that look
        // (and sees a sleeper to wake) or before it (and the look finds its chunks).
        sleepers.add(1, ordering: .sequentiallyConsistent)
        defer { sleepers.subtract(1, ordering: .sequentiallyConsistent) }
        while true {
            if stopping.load(ordering: .sequentiallyConsistent) { return false }
            if Self.hasChunkLeft(cursor.load(ordering: .sequentiallyConsistent)) { return true }
            pthread_cond_wait(posted, lock)
        }
    }
}
