#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import SwiftZram

/// `FileBackingStore` on a loop block device: claimed exclusively, sized by
/// BLKGETSIZE64, discarded with BLKDISCARD, and kept at its size as the kernel does.
@Suite(LoopFacility.trait) struct FileBackingStoreBlockDeviceTests {
    /// A loop device over a sparse file of `bytes`; the body runs, then the device and
    /// the file go, even when the body fails.
    func withLoopDevice(bytes: Int, _ body: (LoopDevice, String) throws -> Void) throws {
        let scratch = try BackingScratch()
        defer { scratch.remove() }
        let file = scratch.file("loop-backing")
        #expect(FileManager.default.createFile(atPath: file, contents: nil))
        #expect(truncate(file, off_t(bytes)) == 0)
        let loop = try LoopDevice(file: file)
        defer { loop.detach() }
        try body(loop, file)
    }

    @Test func aLoopDeviceStoresPagesAndIsClaimedExclusively() throws {
        try withLoopDevice(bytes: 4 << 20) { loop, _ in
            let store = try FileBackingStore.open(loop.path)
            defer { store.close() }
            #expect(store.medium == .blockDevice)
            #expect(store.capacity == 4 << 20)
            #expect(store.isDirect)

            let written = AlignedBuffer(pages: 8, seed: 0x5EED_0101)
            try written.write(to: store, at: 64 * 4096)
            let read = AlignedBuffer(count: 8 * 4096)
            try read.read(from: store, at: 64 * 4096)
            #expect(read.equals(written))

            expectZramError(.busy, "O_EXCL: one claim at a time") { () throws(ZramError) in
                _ = try FileBackingStore.open(loop.path)
            }
        }
    }

    /// The kernel accepts a backing device smaller than disksize; writeback then
    /// runs out of blocks (ENOSPC) instead of failing at setup.
    @Test func prepareKeepsADeviceSmallerThanDisksize() throws {
        try withLoopDevice(bytes: 1 << 20) { loop, _ in
            let store = try FileBackingStore.open(loop.path)
            defer { store.close() }
            try store.prepare(capacity: 64 << 20)
            #expect(store.capacity == 1 << 20)
        }
    }

    @Test func aDeviceUnderOnePageIsRefused() throws {
        try withLoopDevice(bytes: 2048) { loop, _ in
            expectZramError(.invalidArgument) { () throws(ZramError) in _ = try FileBackingStore.open(loop.path) }
        }
    }

    @Test func discardReachesTheDevice() throws {
        try withLoopDevice(bytes: 4 << 20) { loop, file in
            let store = try FileBackingStore.open(loop.path)
            defer { store.close() }
            try AlignedBuffer(pages: 64, seed: 0x5EED_0102).write(to: store, at: 0)
            let before = try #require(fileStatus(file)).st_blocks
            #expect(before >= 64 * 8, "the loop device's file holds the pages")
            // A loop device turns BLKDISCARD into a hole in its file.
            store.discard(at: 0, length: 64 * 4096)
            let after = try #require(fileStatus(file)).st_blocks
            #expect(after < before, "BLKDISCARD freed nothing: \(before) → \(after) blocks")
        }
    }

    @Test func aSymbolicLinkToABlockDeviceIsFollowed() throws {
        try withLoopDevice(bytes: 1 << 20) { loop, _ in
            let scratch = try BackingScratch()
            defer { scratch.remove() }
            let link = scratch.file("by-id")
            #expect(symlink(loop.path, link) == 0)
            let store = try FileBackingStore.open(link)
            defer { store.close() }
            #expect(store.medium == .blockDevice)
            #expect(store.capacity == 1 << 20)
        }
    }
}
