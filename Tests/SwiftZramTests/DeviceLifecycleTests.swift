import Testing
@testable import SwiftZram

@Suite struct DeviceLifecycleTests {
    @Test func disksizeRoundsUpToWholePages() throws {
        let device = ZramDevice(name: "zram0")
        #expect(!device.isInitialized)
        #expect(device.diskSize == 0)
        try device.setDiskSize(10_000)
        #expect(device.isInitialized)
        #expect(device.diskSize == 12_288)
    }

    @Test func disksizeAndAlgorithmAreBusyOnceInitialised() throws {
        let device = try ZramDevice.make(.lz4)
        #expect(throws: ZramError.self) { try device.setDiskSize(1 << 20) }
        do {
            try device.setDiskSize(1 << 20)
        } catch {
            #expect(error.kind == .busy)
            #expect(error.errno == 16)  // EBUSY
        }
        #expect(performing: { try device.setAlgorithm(.zstd) }, throws: { ($0 as? ZramError)?.kind == .busy })
        #expect(performing: { try device.setAlgorithmParameters(level: 3, dictionary: nil) },
                throws: { ($0 as? ZramError)?.kind == .busy })
        #expect(device.algorithm == .lz4)
    }

    @Test func zeroDisksizeIsInvalid() {
        let device = ZramDevice(name: "zram0")
        #expect(performing: { try device.setDiskSize(0) }, throws: { ($0 as? ZramError)?.kind == .invalidArgument })
        #expect(!device.isInitialized)
    }

    @Test func badLevelIsInvalidAndChangesNothing() throws {
        let device = ZramDevice(name: "zram0")
        try device.setAlgorithm(.zstd)
        try device.setAlgorithmParameters(level: 7, dictionary: nil)
        #expect(performing: { try device.setAlgorithmParameters(level: 99, dictionary: nil) },
                throws: { ($0 as? ZramError)?.kind == .invalidArgument })
        #expect(device.compressionParameters.level == 7)
    }

    @Test func ioBeforeInitialisationFails() {
        let device = ZramDevice(name: "zram0")
        #expect(performing: { _ = try device.read(count: 4096, at: 0) },
                throws: { ($0 as? ZramError)?.kind == .notInitialized })
    }

    @Test func resetFreesEverythingAndAllowsReconfiguration() throws {
        let device = try ZramDevice.make(.lzo, diskSize: 1 << 20)
        var rng = SplitMix64(seed: 1)
        try device.write(DeviceTestPage.text.bytes(using: &rng), at: 0)
        try device.setMemoryLimit(1 << 20)
        #expect(device.memoryStatistics.memUsedTotal > 0)

        try device.reset()
        #expect(!device.isInitialized)
        #expect(device.diskSize == 0)
        #expect(device.algorithm == .default)
        #expect(device.memoryStatistics == MemoryStatistics())
        #expect(device.ioStatistics == IOStatistics())

        try device.setAlgorithm(.zstd)
        try device.setDiskSize(2 << 20)
        #expect(try device.read(count: 4096, at: 0) == [UInt8](repeating: 0, count: 4096))
    }

    @Test func resetIsBusyWhileOpen() throws {
        let device = try ZramDevice.make()
        device.open()
        #expect(performing: { try device.reset() }, throws: { ($0 as? ZramError)?.kind == .busy })
        #expect(device.isInitialized)
        device.close()
        try device.reset()
        #expect(!device.isInitialized)
    }

    @Test func outOfRangeIOIsInvalidAndCounted() throws {
        let device = try ZramDevice.make(diskSize: 1 << 20)
        #expect(performing: { try device.write([1, 2, 3], at: (1 << 20) - 2) },
                throws: { ($0 as? ZramError)?.kind == .outOfRange })
        #expect(performing: { _ = try device.read(count: 1, at: UInt64.max) },
                throws: { ($0 as? ZramError)?.kind == .outOfRange })
        #expect(device.ioStatistics.invalidIO == 2)
        #expect(device.memoryStatistics.origDataSize == 0)
    }

    @Test func idleMarksAreClearedByAccess() throws {
        let device = try ZramDevice.make(diskSize: 1 << 20)
        var rng = SplitMix64(seed: 2)
        for page in 0..<4 {
            try device.write(DeviceTestPage.records.bytes(using: &rng), at: UInt64(page * pageSize))
        }
        device.markAllIdle()
        #expect(device.idlePages == 4)
        _ = try device.read(count: 10, at: 5)
        try device.write([7], at: UInt64(2 * pageSize))
        #expect(device.idlePages == 2)
    }

    @Test(arguments: [
        ("4096", 4096), ("1K", 1024), ("1k", 1024), ("2M", 2 << 20), ("3G\n", 3 << 30), ("1T", 1 << 40),
        ("0x1000", 4096), ("010", 8), ("0", 0),
    ] as [(String, UInt64)])
    func memparseAcceptsKernelSyntax(text: String, value: UInt64) {
        #expect(memparse(text) == value)
    }

    @Test(arguments: ["", "K", "12Q", "1.5G", "-1", "99999999999999999999", "16E", "1 G"])
    func memparseRejectsJunk(text: String) {
        #expect(memparse(text) == nil)
    }
}

#if canImport(Glibc)
import Glibc
#endif
import Synchronization

@Suite struct CompressorThreadTests {
    /// The compression queue's thread and the allocator's reserve thread show by name in
    /// `top -H` and `perf`, both run `workerStart` (where znbd marks them I/O flushers),
    /// and reset ends them.
    @Test func compressorAndReserveThreadsAreNamedAndEndOnReset() throws {
        let threadIDs = Mutex<[Int]>([])
        let device = ZramDevice(name: "zram0", streams: 1, queuePages: 16, workerStart: {
            // /proc/thread-self links to "PID/task/TID"
            var link = [CChar](repeating: 0, count: 64)
            let n = readlink("/proc/thread-self", &link, link.count - 1)
            let text = n > 0 ? String(decoding: link[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
            let tid = Int(text.split(separator: "/").last ?? "") ?? -1
            threadIDs.withLock { $0.append(tid) }
        })
        try device.setDiskSize(1 << 20)
        let page = [UInt8](repeating: 7, count: 2048) + [UInt8](repeating: 9, count: 2048)
        try page.withUnsafeBytes { try device.write($0, at: 0) }
        #expect(device.memoryStatistics.origDataSize == 4096)  // drains the queue: the compressor is in run()
        // The store is made after both threads started; each ran workerStart first thing.
        var tids: [Int] = []
        for _ in 0..<4000 {
            tids = threadIDs.withLock { $0 }
            if tids.count == 2 { break }
            usleep(5000)  // liveness only: up to 20 s for a started thread to run its first line
        }
        #expect(tids.count == 2 && tids.allSatisfy { $0 > 0 })
        let names = try tids.map {
            try String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8).trimmingCharacters(in: .newlines)
        }
        #expect(names.sorted() == ["zram-compress", "zram-reserve"])
        try device.reset()
        for tid in tids { #expect(access("/proc/self/task/\(tid)", F_OK) != 0) }
    }
}
