#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing
@testable import SwiftZram

/// A backing store in memory for writeback tests, with fault injection: the next
/// N reads or writes fail with EIO, and `maximumCapacity` caps how far `prepare`
/// grows it (a small store gives ENOSPC).
final class TestBackingStore: BackingStore {
    let name: String
    private let bytes = Mutex<[UInt8]>([])
    private let maximumCapacity: UInt64
    let failingReads = Atomic<Int>(0)
    let failingWrites = Atomic<Int>(0)
    let writeCalls = Atomic<Int>(0)
    let discardedBytes = Atomic<Int>(0)
    let closed = Atomic<Bool>(false)
    /// Microseconds each write sleeps (to keep a writeback busy in reset tests).
    let writeDelayMicroseconds = Atomic<Int>(0)
    /// Runs at the start of every write with its offset (to race the writeback deterministically).
    let beforeWrite = Mutex<(@Sendable (UInt64) -> Void)?>(nil)
    /// Runs at the start of every discard with its offset (to race an allocation against it).
    let beforeDiscard = Mutex<(@Sendable (UInt64) -> Void)?>(nil)

    var isClosed: Bool { closed.load(ordering: .relaxed) }
    var discarded: Int { discardedBytes.load(ordering: .relaxed) }
    var writes: Int { writeCalls.load(ordering: .relaxed) }

    init(name: String = "test-store", maximumCapacity: UInt64 = .max) {
        self.name = name
        self.maximumCapacity = maximumCapacity
    }

    var capacity: UInt64 { UInt64(bytes.withLock { $0.count }) }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(ZramError) {
        if Self.takeFailure(failingReads) { throw ZramError(.ioError, "injected read error") }
        let ok = bytes.withLock { storage in
            guard offset + UInt64(buffer.count) <= UInt64(storage.count) else { return false }
            storage.withUnsafeBytes { source in
                buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[Int(offset)..<(Int(offset) + buffer.count)]))
            }
            return true
        }
        guard ok else { throw ZramError(.ioError, "read past the end") }
    }

    func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws(ZramError) {
        writeCalls.add(1, ordering: .relaxed)
        if let hook = beforeWrite.withLock({ $0 }) { hook(offset) }
        let delay = writeDelayMicroseconds.load(ordering: .relaxed)
        if delay > 0 { usleep(UInt32(delay)) }
        if Self.takeFailure(failingWrites) { throw ZramError(.ioError, "injected write error") }
        let ok = bytes.withLock { storage in
            guard offset + UInt64(buffer.count) <= UInt64(storage.count) else { return false }
            storage.withUnsafeMutableBytes { target in
                (target.baseAddress! + Int(offset)).copyMemory(from: buffer.baseAddress!, byteCount: buffer.count)
            }
            return true
        }
        guard ok else { throw ZramError(.noSpace, "write past the end") }
    }

    func discard(at offset: UInt64, length: UInt64) {
        if let hook = beforeDiscard.withLock({ $0 }) { hook(offset) }
        discardedBytes.add(Int(length), ordering: .relaxed)
        bytes.withLock { storage in
            let end = min(UInt64(storage.count), offset + length)
            guard offset < end else { return }
            for index in Int(offset)..<Int(end) { storage[index] = 0xDD }  // a later read of it would show
        }
    }

    func prepare(capacity requested: UInt64) throws(ZramError) {
        let size = Int(min(requested, maximumCapacity))
        bytes.withLock { $0 = [UInt8](repeating: 0, count: size) }
    }

    func close() { closed.store(true, ordering: .relaxed) }

    private static func takeFailure(_ counter: borrowing Atomic<Int>) -> Bool {
        var left = counter.load(ordering: .relaxed)
        while left > 0 {
            let (won, seen) = counter.compareExchange(expected: left, desired: left - 1, ordering: .relaxed)
            if won { return true }
            left = seen
        }
        return false
    }
}

extension ZramDevice {
    /// A device with `store` as its backing_dev, initialised to `diskSize`.
    static func makeBacked(
        by store: TestBackingStore, _ algorithm: CompressionAlgorithm = .lz4, diskSize: UInt64 = 4 << 20,
        queuePages: Int = ZramDevice.defaultQueuePages, layout: String = "page"
    ) throws -> ZramDevice {
        let device = ZramDevice(name: "zram-wb", streams: 2, queuePages: queuePages, backingOpener: { _ in store })
        try device.setAlgorithm(algorithm)
        try device.writeAttribute("writeback_layout", layout)
        try device.writeAttribute("backing_dev", store.name)
        try device.setDiskSize(diskSize)
        return device
    }

    /// bd_stat as three numbers.
    var bd: [UInt64] { backingStatistics.fields }
}

/// Test data: fio's `buffer_compress_percentage=60` pages (each 512-byte chunk is 40 %
/// random bytes, then zeros), and real anonymous memory when it was captured.
enum WritebackData {
    static func fioPage(compressPercentage: Int = 60, using rng: inout SplitMix64) -> [UInt8] {
        var page = [UInt8](repeating: 0, count: pageSize)
        let chunk = 512
        let random = chunk * (100 - compressPercentage) / 100
        for start in stride(from: 0, to: pageSize, by: chunk) {
            for index in start..<(start + random) { page[index] = UInt8(truncatingIfNeeded: rng.next()) }
        }
        return page
    }

    /// The anonymous-memory corpus (`ZRAM_CORPUS`, default /tmp/znbd-anon.bin, made by
    /// scripts/capture-anon-corpus.sh, captured first if missing): `count` pages from a seeded
    /// offset. nil when it cannot be had, which fails the calling test under CI=true.
    static func corpusPages(_ count: Int, seed: UInt64) -> [[UInt8]]? {
        let path = AnonymousMemoryCorpus.path
        do { try AnonymousMemoryCorpus.ensureCaptured() } catch { print("WritebackTests: \(error)") }
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else {
            if getenvString("CI") == "true" { Issue.record("the anonymous-memory corpus \(path) is missing under CI") }
            print("WritebackTests: SKIPPING corpus data: \(path) is missing (scripts/capture-anon-corpus.sh makes it)")
            return nil
        }
        defer { Glibc.close(descriptor) }
        let size = Int(lseek(descriptor, 0, SEEK_END))
        let available = size / pageSize
        guard available >= count else {
            Issue.record("the corpus \(path) has \(available) pages, fewer than \(count)")
            return nil
        }
        var rng = SplitMix64(seed: seed)
        let first = Int(rng.next() % UInt64(available - count + 1))
        var pages: [[UInt8]] = []
        for index in 0..<count {
            var page = [UInt8](repeating: 0, count: pageSize)
            let got = page.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, pageSize, off_t((first + index) * pageSize)) }
            guard got == pageSize else {
                Issue.record("short read of the corpus at page \(first + index)")
                return nil
            }
            pages.append(page)
        }
        return pages
    }

    private static func getenvString(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        return String(cString: value)
    }
}
