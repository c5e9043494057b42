#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Platform
import Synchronization
import Testing
@testable import SwiftZram

/// A fixed host memory pressure for tiering tests (nil: the host reports none).
final class FixedPressure: MemoryPressureReader {
    let percent = Mutex<Double?>(nil)
    func someAverage10() -> Double? { percent.withLock { $0 } }
}

/// The data a tiering test writes.
enum TieringData: String, CaseIterable, CustomTestStringConvertible {
    case corpus, fio60

    var testDescription: String { rawValue }

    /// `count` pages, none same-filled.
    func pages(_ count: Int, seed: UInt64) throws -> [[UInt8]] {
        switch self {
        case .corpus: return try AnonymousMemoryCorpus.pages(count, seed: seed)
        case .fio60:
            var rng = SplitMix64(seed: seed)
            return (0..<count).map { _ in ShapedPage.sixtyPercentCompressible(&rng) }
        }
    }
}

extension ZramDevice {
    /// A device with a manual clock and `store` as backing_dev (when given), initialised,
    /// with mem_limit set. Tiering is on when `tiering` is; its thread then waits for the
    /// largest interval, so only the test runs passes.
    static func makeTiered(
        store: (any BackingStore)?, tiering: Bool, memLimit: UInt64 = 0, diskSize: UInt64 = 16 << 20,
        clock: AccessClock = AccessClock(manual: true), secondaries: [CompressionAlgorithm] = [],
        queuePages: Int = 0, workerStart: (@Sendable () -> Void)? = nil, packed: Bool = false
    ) throws -> ZramDevice {
        let device = ZramDevice(
            name: "zram-tier", streams: 2, queuePages: queuePages, workerStart: workerStart, manualClock: clock,
            backingOpener: { name throws(ZramError) in
                if let store { return store }
                throw ZramError(.invalidArgument, "no store for \(name)")
            })
        try device.setAlgorithm(.lz4)
        for (offset, algorithm) in secondaries.enumerated() {
            try device.setRecompressionAlgorithm(algorithm, priority: offset + 1)
        }
        if let store { try device.writeAttribute("backing_dev", store.name) }
        try device.writeAttribute("tiering_interval", "\(UInt32.max)")
        if packed { try device.writeAttribute("writeback_layout", "packed") }
        try device.setDiskSize(diskSize)
        try device.writeAttribute("mem_limit", "\(memLimit)")
        if tiering { try device.writeAttribute("tiering_enable", "1") }
        return device
    }

    /// Pages whose object is in the backing store.
    func writtenBackPages(_ pages: Range<Int>) throws -> [Int] {
        try withInitializedStore { store in
            pages.filter { store.table.existingSlot($0)?.unlockedState.isWrittenBack ?? false }
        }
    }
}

/// Writes `pages` from page 0, one write each. - Returns: the kinds of the errors, in order.
func writeAll(_ device: ZramDevice, _ pages: [[UInt8]], from first: Int = 0) -> [ZramError.Kind] {
    var failures: [ZramError.Kind] = []
    for (index, page) in pages.enumerated() {
        do {
            try device.write(page, at: UInt64((first + index) * pageSize))
        } catch let error as ZramError {
            failures.append(error.kind)
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
    return failures
}

/// A thread a test starts from inside a hook.
final class ThreadBox: Sendable {
    let thread = Mutex<PosixThread?>(nil)
}

/// The names of the threads that ran a device's workerStart.
final class NameLog: Sendable {
    let names = Mutex<[String]>([])

    func recordCurrentThread() {
        let descriptor = open("/proc/thread-self/comm", O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        defer { close(descriptor) }
        var bytes = [UInt8](repeating: 0, count: 32)
        let count = bytes.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        guard count > 0 else { return }
        let name = String(decoding: bytes[..<count], as: UTF8.self).trimmingCharacters(in: .newlines)
        names.withLock { $0.append(name) }
    }
}
