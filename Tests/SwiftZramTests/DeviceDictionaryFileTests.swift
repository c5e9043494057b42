#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization
import Platform
import Testing
@testable import SwiftZram

/// `algorithm_params dict=PATH` takes only regular files, without ever blocking
/// the control thread.
@Suite struct DeviceDictionaryFileTests {
    /// A temporary directory, removed by `remove()`.
    struct Scratch {
        let path: String

        init() throws {
            var template = Array("/tmp/zram-dict.XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { throw POSIXError(.EIO) }
            path = String(cString: made)
        }

        func file(_ name: String) -> String { "\(path)/\(name)" }
        func remove() { try? FileManager.default.removeItem(atPath: path) }
    }

    static func zstdDevice() throws -> ZramDevice {
        let device = ZramDevice(name: "zram-dict", streams: 1)
        try device.setAlgorithm(.zstd)
        return device
    }

    static func expectInvalid(_ device: ZramDevice, _ path: String, _ comment: Comment) {
        #expect(
            comment, performing: { try device.writeAttribute("algorithm_params", "dict=\(path)") },
            throws: { ($0 as? ZramError)?.kind == .invalidArgument })
        #expect(device.dictionaryPath == nil)
    }

    @Test func aRegularFileIsLoaded() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.file("dict")
        #expect(FileManager.default.createFile(atPath: path, contents: Data(CompressionDictionaryTests.dictionary)))
        let device = try Self.zstdDevice()
        try device.writeAttribute("algorithm_params", "level=3 dict=\(path)")
        #expect(device.dictionaryPath == path)
        #expect(device.compressionParameters.dictionary == CompressionDictionaryTests.dictionary)
    }

    /// Opening a FIFO without a writer blocks forever unless it is opened non-blocking.
    @Test func aFIFOIsRefusedWithoutBlocking() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.file("fifo")
        #expect(mkfifo(path, 0o600) == 0)
        let device = try Self.zstdDevice()
        let outcome = ThreadOutcome()
        let control = startThread {
            outcome.run { () throws(ZramError) in try device.writeAttribute("algorithm_params", "dict=\(path)") }
        }
        // A deadline only so that a blocking open fails the test instead of hanging it.
        var waited = 0
        while !outcome.isFinished && waited < 60_000 {
            usleep(1000)
            waited += 1
        }
        let blocked = !outcome.isFinished
        if blocked {
            // Release the stuck open() by opening the other end.
            let writer = open(path, O_WRONLY | O_NONBLOCK)
            if writer >= 0 { close(writer) }
        }
        control.join()
        #expect(!blocked, "open() of the FIFO blocked the control thread")
        #expect(outcome.failure?.kind == .invalidArgument)
        #expect(device.dictionaryPath == nil)
    }

    @Test func aDirectoryIsRefused() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        Self.expectInvalid(try Self.zstdDevice(), scratch.path, "directory")
    }

    @Test func aCharacterDeviceIsRefused() throws {
        Self.expectInvalid(try Self.zstdDevice(), "/dev/zero", "/dev/zero")
    }

    @Test func aSymbolicLinkIsRefused() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let target = scratch.file("dict")
        #expect(FileManager.default.createFile(atPath: target, contents: Data(CompressionDictionaryTests.dictionary)))
        #expect(symlink(target, scratch.file("link")) == 0)
        Self.expectInvalid(try Self.zstdDevice(), scratch.file("link"), "symbolic link")
    }

    @Test func emptyAndOversizedFilesAreRefused() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        #expect(FileManager.default.createFile(atPath: scratch.file("empty"), contents: Data()))
        #expect(FileManager.default.createFile(
            atPath: scratch.file("large"), contents: Data(count: DictionaryFile.maximumSize + 1)))
        let device = try Self.zstdDevice()
        Self.expectInvalid(device, scratch.file("empty"), "empty")
        Self.expectInvalid(device, scratch.file("large"), "larger than 1 MiB")
        Self.expectInvalid(device, scratch.file("missing"), "missing")
    }
}
