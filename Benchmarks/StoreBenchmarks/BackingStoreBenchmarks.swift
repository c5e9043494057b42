import Benchmark
import Foundation
import SwiftZram

/// A file backing store in a temporary directory, written and read a page at a time
/// at rotating offsets; only its own benchmark thread touches it.
final class BackingFileBench {
    static let pages = 4096
    let directory: String
    let store: FileBackingStore
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
    var cursor = 0

    init() throws {
        directory = NSTemporaryDirectory() + "/znbd-backing-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        store = try FileBackingStore.open(directory + "/backing")
        try store.prepare(capacity: UInt64(Self.pages * 4096))
        // Every block written once, so the read benchmark reads data, not holes.
        for index in 0..<Self.pages {
            buffer.storeBytes(of: UInt64(index) &* 0x9E37_79B9_7F4A_7C15, as: UInt64.self)
            try store.write(UnsafeRawBufferPointer(buffer), at: UInt64(index * 4096))
        }
    }

    deinit {
        store.close()
        buffer.deallocate()
        try? FileManager.default.removeItem(atPath: directory)
    }

    @inline(__always)
    func nextOffset() -> UInt64 {
        let offset = UInt64(cursor * 4096)
        cursor = cursor + 1 == Self.pages ? 0 : cursor + 1
        return offset
    }
}

/// One written-back page to a file backing store and one read back (O_DIRECT where the
/// file system takes it): the store's own per-page cost, which must allocate nothing.
func backingStoreBenchmarks() {
    Benchmark("backing file write page") { (benchmark: Benchmark, bench: BackingFileBench) in
        for _ in benchmark.scaledIterations {
            try bench.store.write(UnsafeRawBufferPointer(bench.buffer), at: bench.nextOffset())
        }
    } setup: {
        try BackingFileBench()
    }

    Benchmark("backing file read page") { (benchmark: Benchmark, bench: BackingFileBench) in
        for _ in benchmark.scaledIterations {
            try bench.store.read(into: bench.buffer, at: bench.nextOffset())
        }
    } setup: {
        try BackingFileBench()
    }
}
