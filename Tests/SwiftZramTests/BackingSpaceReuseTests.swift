import Synchronization
import Testing
@testable import SwiftZram

/// Freed backing room is allocated again only after the store discarded it. A writeback
/// that placed and wrote an object in a block while the block's discard was still to
/// come lost that object to the discard: the page then failed to read (EIO), or read
/// as the store's zeros when it was stored raw.
@Suite struct BackingSpaceReuseTests {
    static let blocks = 4

    /// Allocations made while a discard runs, by offset (nil for "the store was full").
    final class Allocations: Sendable {
        let made = Mutex<[UInt64?]>([])
    }

    @Test(arguments: ["page", "packed"])
    func aFreedBlockIsNotAllocatedUntilItsDiscardIsDone(layout: String) throws {
        let capacity = UInt64(Self.blocks * pageSize)
        let space: any BackingSpace =
            layout == "packed" ? try PackedBlockSpace(capacity: capacity) : try PageBlockSpace(capacity: capacity)
        let store = TestBackingStore()
        try store.prepare(capacity: capacity)
        let tier = BackingTier(store: store, space: space)
        // Whole pages: one block each, in either layout.
        let offsets = (0..<Self.blocks).map { _ in space.allocate(bytes: pageSize) }
        space.sealBatch()
        #expect(Set(offsets.compactMap { $0 }).count == Self.blocks)
        #expect(space.allocate(bytes: pageSize) == nil, "the store is full")

        let during = Allocations()
        store.beforeDiscard.withLock { hook in
            hook = { _ in
                let offset = space.allocate(bytes: pageSize)
                during.made.withLock { $0.append(offset) }
            }
        }
        let freed = try #require(offsets[1])
        tier.release(at: freed, bytes: pageSize)
        store.beforeDiscard.withLock { $0 = nil }

        #expect(during.made.withLock { $0 } == [nil], "no room is handed out while its discard is pending")
        #expect(space.allocate(bytes: pageSize) == freed, "the room is free again once discarded")
        #expect(space.blocksInUse == Self.blocks)
    }

    @Test func aPackedBlockIsDiscardedAndReusedOnlyWhenItsLastObjectGoes() throws {
        let capacity = UInt64(Self.blocks * pageSize)
        let space = try PackedBlockSpace(capacity: capacity)
        let store = TestBackingStore()
        try store.prepare(capacity: capacity)
        let tier = BackingTier(store: store, space: space)
        let first = try #require(space.allocate(bytes: 1000))
        let second = try #require(space.allocate(bytes: 1000))
        space.sealBatch()
        #expect(first / UInt64(pageSize) == second / UInt64(pageSize), "packed into one block")
        #expect(space.blocksInUse == 1)

        tier.release(at: first, bytes: 1000)
        #expect(store.discarded == 0, "the block still holds an object")
        #expect(space.blocksInUse == 1)
        tier.release(at: second, bytes: 1000)
        #expect(store.discarded == pageSize)
        #expect(space.blocksInUse == 0)
        #expect(space.allocate(bytes: 1000) == first - first % UInt64(pageSize), "the emptied block is the first free one")
    }
}
