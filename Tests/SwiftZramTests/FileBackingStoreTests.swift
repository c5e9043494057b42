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

    /// A file planted by another user in a shared directory, or one others may write,
    /// would let them read written-back pages or change what is read back: refused.
    /// One only readable by others is narrowed to 0600.
    @Test func aFileOthersOwnOrMayWriteIsRefused() throws {
        try #require(geteuid() == 0, "needs root to chown the file to nobody")
        let scratch = try BackingScratch()
        defer { scratch.remove() }
        let planted = scratch.file("planted")
        #expect(creat(planted, 0o600) >= 0 && chown(planted, 65534, 65534) == 0)
        let owned = expectZramError(.invalidArgument) { () throws(ZramError) in _ = try FileBackingStore.open(planted) }
        #expect(owned?.contains("uid 65534") == true, "\(owned ?? "")")
        let shared = scratch.file("shared")
        #expect(creat(shared, 0o600) >= 0 && chmod(shared, 0o666) == 0)
        let writable = expectZramError(.invalidArgument) { () throws(ZramError) in _ = try FileBackingStore.open(shared) }
        #expect(writable?.contains("writable by group or others") == true, "\(writable ?? "")")
        let readable = scratch.file("readable")
        #expect(creat(readable, 0o600) >= 0 && chmod(readable, 0o644) == 0)
        let store = try FileBackingStore.open(readable)
        defer { store.close() }
        var status = stat()
        #expect(stat(readable, &status) == 0 && status.st_mode & 0o777 == 0o600)
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

    /// Aligned requests go direct, others through the page cache; each sees what the
    /// other wrote, byte for byte.
    @Test func alignedAndUnalignedRequestsSeeEachOthersBytes() throws {
        let scratch = try BackingScratch()
        defer { scratch.remove() }
        let store = try FileBackingStore.open(scratch.file("backing"))
        defer { store.close() }
        #expect(store.isDirect, "ext4 and tmpfs (Linux 6.6+) take O_DIRECT")
        try store.prepare(capacity: 1 << 20)
        let pages = AlignedBuffer(pages: 4, seed: 0x5EED_0004)
        try pages.write(to: store, at: 0)

        // A compressed object: 1000 bytes at an odd offset, from an unaligned address.
        let object = AlignedBuffer(pages: 1, seed: 0x5EED_0005)
        try withExtendedLifetime(object) {
            try store.write(UnsafeRawBufferPointer(rebasing: object.readOnly[3..<1003]), at: 4096 + 100)
        }
        let whole = AlignedBuffer(count: 4 * 4096)
        try whole.read(from: store, at: 0)
        var expected = Array(pages.bytes)
        expected.replaceSubrange(4196..<5196, with: object.bytes[3..<1003])
        #expect(Array(whole.bytes) == expected, "a direct read sees the cached write")

        // A direct write over the same block, then an unaligned read of part of it.
        let replacement = AlignedBuffer(pages: 1, seed: 0x5EED_0006)
        try replacement.write(to: store, at: 4096)
        let part = AlignedBuffer(count: 4096)
        try withExtendedLifetime(part) {
            try store.read(into: UnsafeMutableRawBufferPointer(rebasing: part.bytes[5..<2005]), at: 4096 + 7)
        }
        #expect(Array(part.bytes[5..<2005]) == Array(replacement.bytes[7..<2007]), "a cached read sees the direct write")
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
