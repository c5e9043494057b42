#if canImport(Glibc)
import Glibc
#endif
import Platform
import Testing
@testable import SwiftZram

/// A request takes a compression stream per page, and only to compress or decompress.
@Suite struct DeviceStreamTests {
    /// With the device's only stream held elsewhere, pages that need no compression
    /// (same-filled, queued) are still written, and same-filled pages read.
    @Test func pagesThatNeedNoCompressionTakeNoStream() throws {
        let device = try ZramDevice.make(.lz4, diskSize: 1 << 20, streams: 1)
        let compressors = try device.withInitializedStore { $0.compressors }
        var rng = SplitMix64(seed: 21)
        let sameWord = DeviceTestPage.sameWord.bytes(using: &rng)
        let text = DeviceTestPage.text.bytes(using: &rng)
        let request = (sameWord + text + [UInt8](repeating: 0, count: pageSize)).withUnsafeBytes { Array($0) }
        let outcome = ThreadOutcome()
        let readBack = UnsafeMutableRawBufferPointer.allocate(byteCount: request.count, alignment: 16)
        defer { readBack.deallocate() }
        let source = UnsafeMutableRawBufferPointer.allocate(byteCount: request.count, alignment: 16)
        defer { source.deallocate() }
        source.copyBytes(from: request)
        let client = UnsafeSendablePages(source: source, readBack: readBack)
        var finishedWhileHeld = false
        var thread: PosixThread?
        compressors.withStream { _ in
            thread = startThread {
                outcome.run { () throws(ZramError) in
                    try device.write(UnsafeRawBufferPointer(client.source), at: 0)
                    // The same-filled pages; the queued one may be compressed by now, and reading it
                    // would then take a stream.
                    try device.read(into: UnsafeMutableRawBufferPointer(rebasing: client.readBack[..<pageSize]), at: 0)
                    try device.read(
                        into: UnsafeMutableRawBufferPointer(rebasing: client.readBack[(2 * pageSize)...]),
                        at: UInt64(2 * pageSize))
                }
            }
            // A deadline only so that a request waiting for the stream fails the test instead of hanging it.
            var polls = 0
            while !outcome.isFinished && polls < 60_000 {
                usleep(1000)
                polls += 1
            }
            finishedWhileHeld = outcome.isFinished
        }
        thread?.join()  // after the stream is back, so a waiting request can finish
        #expect(finishedWhileHeld, "a request waited for a stream it does not need")
        #expect(outcome.failure == nil)
        #expect(Array(UnsafeRawBufferPointer(rebasing: readBack[..<pageSize])) == sameWord)
        #expect(Array(UnsafeRawBufferPointer(rebasing: readBack[(2 * pageSize)...])) == [UInt8](repeating: 0, count: pageSize))
        #expect(try device.read(count: request.count, at: 0) == request)
    }
}

/// The test's buffers, handed to its thread.
// @unchecked: the test keeps both alive until the thread is joined, and only the thread touches them meanwhile.
struct UnsafeSendablePages: @unchecked Sendable {
    let source: UnsafeMutableRawBufferPointer
    let readBack: UnsafeMutableRawBufferPointer
}
