#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import SwiftZram

/// `FileBackingStore` on a regular file: created sparse, sized by `prepare`, holes
/// punched by `discard`, and everything that is not a block device or a regular file
/// refused without blocking.
@Suite struct FileBackingStoreTests {
    static let pages = 16

    @Test func aMissingFileIsCreatedPrivateAndSizedSparse() throws {
        let scratch = try BackingScratch()
        defer { scratch.remove() }
        let path = scratch.file("backing")
        let store = try FileBackingStore.open(path)
        defer { store.close() }
        #expect(store.medium == .regularFile)
        #expect(store.name == path)
        #expect(store.capacity == 0)
        let created = try #require(fileStatus(path))
        #expect(created.st_mode & 0o777 == 0o600)

        try store.prepare(capacity: 64 << 20)
        #expect(store.capacity == 64 << 20)
        let sized = try #require(fileStatus(path))
        #expect(sized.st_size == 64 << 20)
        #expect(sized.st_blocks == 0, "a fresh backing file takes no space")
    }

    @Test func pagesReadBackAsWritten() throws {
        let scratch = try BackingScratch()
        defer { scratch.remove() }
        let store = try FileBackingStore.open(scratch.file("backing"))
        defer { store.close() }
        try store.prepare(capacity: UInt64(Self.pages * 4096))
        let written = AlignedBuffer(pages: 3, seed: 0x5EED_0001)
        try written.write(to: store, at: 4 * 4096)
        let read = AlignedBuffer(count: 3 * 4096)
        try read.read(from: store, at: 4 * 4096)
        #expect(read.equals(written))
        let untouched = AlignedBuffer(count: 4096)
        try untouched.read(from: store, at: 0)
        #expect(untouched.isZero())
    }

    @Test func discardPunchesAHoleThatFreesBlocks() throws {
        let scratch = try BackingScratch()
        defer { scratch.remove() }
        let path = scratch.file("backing")
        let store = try FileBackingStore.open(path)
        defer { store.close() }
        let bytes = Self.pages * 4096
        try store.prepare(capacity: UInt64(bytes))
        try AlignedBuffer(pages: Self.pages, seed: 0x5EED_0002).write(to: store, at: 0)
        let fd = open(path, O_RDONLY)
        #expect(fd >= 0 && fsync(fd) == 0)
        close(fd)
        let before = try #require(fileStatus(path)).st_blocks
        #expect(before >= bytes / 512, "every written page takes blocks")

        store.discard(at: 0, length: UInt64(bytes))
        let after = try #require(fileStatus(path))
        #expect(after.st_blocks == 0, "the hole frees every block (\(before) before)")
        #expect(after.st_size == bytes, "a punched hole keeps the size")
        let read = AlignedBuffer(count: bytes)
        try read.read(from: store, at: 0)
        #expect(read.isZero())
    }

    @Test func prepareEmptiesWhatAnEarlierUseLeft() throws {
        let scratch = try BackingScratch()
        defer { scratch.remove() }
        let path = scratch.file("backing")
        let first = try FileBackingStore.open(path)
        try first.prepare(capacity: 1 << 20)
        try AlignedBuffer(pages: 4, seed: 0x5EED_0003).write(to: first, at: 0)
        first.close()

        let second = try FileBackingStore.open(path)
        defer { second.close() }
        #expect(second.capacity == 1 << 20, "an existing file's size is its capacity until prepare")
        try second.prepare(capacity: 2 << 20)
        #expect(try #require(fileStatus(path)).st_blocks == 0)
        let read = AlignedBuffer(count: 4 * 4096)
        try read.read(from: second, at: 0)
        #expect(read.isZero())
    }

    @Test func aSecondStoreOnTheSameFileIsBusy() throws {
        let scratch = try BackingScratch()
        defer { scratch.remove() }
        let path = scratch.file("backing")
        let store = try FileBackingStore.open(path)
        expectZramError(.busy) { () throws(ZramError) in _ = try FileBackingStore.open(path) }
        store.close()
        let again = try FileBackingStore.open(path)
        again.close()
    }

    @Test func requestsPastTheCapacityAreIOErrors() throws {
        let scratch = try BackingScratch()
        defer { scratch.remove() }
        let store = try FileBackingStore.open(scratch.file("backing"))
        defer { store.close() }
        try store.prepare(capacity: 8192)
        let buffer = AlignedBuffer(count: 8192)
        expectZramError(.ioError) { () throws(ZramError) in try buffer.write(to: store, at: 4096) }
        expectZramError(.ioError) { () throws(ZramError) in try buffer.read(from: store, at: UInt64.max - 4095) }
        #expect(try #require(fileStatus(scratch.file("backing"))).st_size == 8192)
    }

    @Test func directIOTakesOnlyAlignedRequests() throws {
        let scratch = try BackingScratch()
        defer { scratch.remove() }
        let store = try FileBackingStore.open(scratch.file("backing"))
        defer { store.close() }
        try store.prepare(capacity: 1 << 20)
        let buffer = AlignedBuffer(count: 3 * 4096)
        defer { withExtendedLifetime(buffer) {} }
        let misaligned = UnsafeRawBufferPointer(rebasing: buffer.readOnly[512..<(512 + 4096)])
        let short = UnsafeRawBufferPointer(rebasing: buffer.readOnly[0..<1000])
        if store.isDirect {
            expectZramError(.invalidArgument) { () throws(ZramError) in try store.write(misaligned, at: 0) }
            expectZramError(.invalidArgument) { () throws(ZramError) in try store.write(short, at: 0) }
            expectZramError(.invalidArgument) { () throws(ZramError) in try buffer.write(to: store, at: 512) }
        } else {
            // Through the page cache any request works.
            try store.write(misaligned, at: 512)
            try store.write(short, at: 0)
        }
    }

    @Test func aFileTooLargeForTheFileSystemIsNoSpace() throws {
        let scratch = try BackingScratch()
        defer { scratch.remove() }
        let store = try FileBackingStore.open(scratch.file("backing"))
        defer { store.close() }
        // ext4 holds at most 16 TiB in one file; file systems that hold more may succeed.
        do {
            try store.prepare(capacity: UInt64(Int64.max))
        } catch {
            #expect(error.kind == .noSpace, "\(error)")
            #expect(error.message.contains("EFBIG"), "\(error)")
        }
    }

    @Test func aSymbolicLinkIsNeverFollowedToAFile() throws {
        let scratch = try BackingScratch()
        defer { scratch.remove() }
        let target = scratch.file("target")
        #expect(FileManager.default.createFile(atPath: target, contents: Data("keep".utf8)))
        #expect(symlink(target, scratch.file("link")) == 0)
        #expect(symlink(scratch.file("missing"), scratch.file("dangling")) == 0)

        let message = expectZramError(.invalidArgument) { () throws(ZramError) in
            _ = try FileBackingStore.open(scratch.file("link"))
        }
        #expect(message?.contains("symbolic link") == true, "\(message ?? "")")
        expectZramError(.invalidArgument) { () throws(ZramError) in
            _ = try FileBackingStore.open(scratch.file("dangling"))
        }
        #expect(!FileManager.default.fileExists(atPath: scratch.file("missing")), "nothing created through a link")
        #expect(FileManager.default.contents(atPath: target) == Data("keep".utf8))
    }

    /// Opening a FIFO without a writer would block forever; the store never opens one.
    @Test func aFIFOIsRefusedWithoutBlocking() throws {
        let scratch = try BackingScratch()
        defer { scratch.remove() }
        let path = scratch.file("fifo")
        #expect(mkfifo(path, 0o600) == 0)
        let message = expectZramError(.invalidArgument) { () throws(ZramError) in _ = try FileBackingStore.open(path) }
        #expect(message?.contains("FIFO") == true, "\(message ?? "")")
    }

    @Test func aDirectoryIsRefused() throws {
        let scratch = try BackingScratch()
        defer { scratch.remove() }
        let message = expectZramError(.invalidArgument) { () throws(ZramError) in
            _ = try FileBackingStore.open(scratch.path)
        }
        #expect(message?.contains("directory") == true, "\(message ?? "")")
    }

    @Test func aSocketAndACharacterDeviceAreRefused() throws {
        let scratch = try BackingScratch()
        defer { scratch.remove() }
        #expect(mknod(scratch.file("socket"), S_IFSOCK | 0o600, 0) == 0)
        expectZramError(.invalidArgument) { () throws(ZramError) in _ = try FileBackingStore.open(scratch.file("socket")) }
        expectZramError(.invalidArgument) { () throws(ZramError) in _ = try FileBackingStore.open("/dev/null") }
    }

    @Test func aRelativePathIsRefused() throws {
        expectZramError(.invalidArgument) { () throws(ZramError) in _ = try FileBackingStore.open("backing") }
        expectZramError(.invalidArgument) { () throws(ZramError) in _ = try FileBackingStore.open("") }
    }
}
