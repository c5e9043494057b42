import Synchronization
import Testing
@testable import SwiftZram

/// Pages that look like memory: text, records, pointers, noise, same-filled words.
enum DeviceTestPage: CaseIterable {
    case text, records, pointers, noise, zeros, sameWord, halfNoise

    func bytes(using rng: inout SplitMix64) -> [UInt8] {
        var page = [UInt8](repeating: 0, count: pageSize)
        switch self {
        case .text:
            let words = ["swap", "zram", "page", "memory ", "the ", "kernel", "compress", "\n", "lz4 ", "block "]
            var i = 0
            while i < pageSize {
                for byte in words[Int(rng.next() % UInt64(words.count))].utf8 where i < pageSize {
                    page[i] = byte
                    i += 1
                }
            }
        case .records:
            for r in 0..<(pageSize / 32) {
                let id = UInt64(r) + rng.next() % 4
                withUnsafeBytes(of: id.littleEndian) { page.replaceSubrange(r * 32..<(r * 32 + 8), with: $0) }
                page[r * 32 + 8] = UInt8(truncatingIfNeeded: rng.next() % 3)
            }
        case .pointers:
            let base: UInt64 = 0x7f3a_0000_0000 + (rng.next() % 0x1000) << 12
            for w in 0..<(pageSize / 8) where rng.next() % 3 != 0 {
                let pointer = base + (rng.next() % 0x10000) * 16
                withUnsafeBytes(of: pointer.littleEndian) { page.replaceSubrange(w * 8..<(w * 8 + 8), with: $0) }
            }
        case .noise:
            for i in 0..<pageSize { page[i] = UInt8(truncatingIfNeeded: rng.next()) }
        case .zeros:
            break
        case .sameWord:
            let word = rng.next()
            for w in 0..<(pageSize / 8) {
                withUnsafeBytes(of: word) { page.replaceSubrange(w * 8..<(w * 8 + 8), with: $0) }
            }
        case .halfNoise:
            for i in 0..<(pageSize / 2) { page[i] = UInt8(truncatingIfNeeded: rng.next()) }
        }
        return page
    }
}

extension ZramDevice {
    /// A device initialised with `algorithm` and `diskSize`.
    static func make(
        _ algorithm: CompressionAlgorithm = .lz4, diskSize: UInt64 = 4 << 20, streams: Int = 2, name: String = "zram-test",
        queuePages: Int = ZramDevice.defaultQueuePages
    ) throws -> ZramDevice {
        let device = ZramDevice(name: name, streams: streams, queuePages: queuePages)
        try device.setAlgorithm(algorithm)
        try device.setDiskSize(diskSize)
        return device
    }

    func write(_ bytes: [UInt8], at offset: UInt64) throws {
        try bytes.withUnsafeBytes { buffer in try write(buffer, at: offset) }
    }

    func read(count: Int, at offset: UInt64) throws -> [UInt8] {
        var out = [UInt8](repeating: 0xEE, count: count)
        try out.withUnsafeMutableBytes { buffer in try read(into: buffer, at: offset) }
        return out
    }
}

/// What a thread a test starts reports back: whether it finished, and its error.
final class ThreadOutcome: Sendable {
    let finished = Atomic<Bool>(false)
    let error = Mutex<ZramError?>(nil)

    func run(_ body: () throws(ZramError) -> Void) {
        do { try body() } catch { self.error.withLock { $0 = error } }
        finished.store(true, ordering: .releasing)
    }

    var isFinished: Bool { finished.load(ordering: .acquiring) }
    var failure: ZramError? { error.withLock { $0 } }
}
