#if canImport(Glibc)
import Glibc
#endif

/// Which stored pages a writeback scan takes (zram's writeback modes).
struct WritebackFilter: OptionSet, Hashable {
    let rawValue: Int
    static let idle = WritebackFilter(rawValue: 1)
    static let huge = WritebackFilter(rawValue: 2)
    static let incompressible = WritebackFilter(rawValue: 4)
    /// `page_index=` without a type: any page with an object in RAM.
    static let any: WritebackFilter = []

    /// The filter a mode name selects (`idle`, `huge`, `huge_idle`, `incompressible`).
    init?(mode: Substring) {
        switch mode {
        case "idle": self = .idle
        case "huge": self = .huge
        case "huge_idle": self = [.idle, .huge]
        case "incompressible": self = .incompressible
        default: return nil
        }
    }

    init(rawValue: Int) { self.rawValue = rawValue }

    func accepts(_ state: PageState) -> Bool {
        (!contains(.idle) || state.isIdle) && (!contains(.huge) || state.isHuge)
            && (!contains(.incompressible) || state.isIncompressible)
    }
}

/// Memory for one writeback call: a buffer of `capacity` pages that holds the images
/// of the blocks one batch writes (its copied objects placed where the layout put
/// them), and the batch's entries. Allocated once per call.
final class WritebackBatch {
    struct Entry {
        var page: Int
        /// The slot's state when its object was copied.
        var state: PageState
        /// Where the copy goes in the backing store.
        var location: UInt64
        /// What the page took of writeback_limit.
        var charge: WritebackControls.Charge
        /// The index in `blocks` of the block that holds the copy.
        var block: Int
    }

    /// A block the batch writes: its index in the store, and whether its write succeeded.
    /// Its image is page `blocks` index of the buffer.
    struct Block {
        var index: UInt64
        var written = false
    }

    let capacity: Int
    let buffer: UnsafeMutableRawPointer
    var entries: [Entry] = []
    var blocks: [Block] = []

    /// - Throws: `ENOMEM` if the system refuses the buffer.
    init(capacity: Int) throws(ZramError) {
        var memory: UnsafeMutableRawPointer?
        guard posix_memalign(&memory, pageSize, capacity * pageSize) == 0, let memory else {
            throw ZramError(.outOfMemory, "cannot allocate a writeback buffer of \(capacity) pages")
        }
        self.capacity = capacity
        buffer = memory
        entries.reserveCapacity(capacity)
        blocks.reserveCapacity(capacity)
    }

    /// The buffer page imaging the block at `location`, adding (and zeroing) it if the
    /// batch has no image of it yet. A layout fills blocks in order, so only the last
    /// block can be shared with the next object.
    func image(of location: UInt64) -> (block: Int, bytes: UnsafeMutableRawPointer) {
        let index = location / UInt64(pageSize)
        if let last = blocks.last, last.index == index {
            return (blocks.count - 1, page(blocks.count - 1) + Int(location % UInt64(pageSize)))
        }
        blocks.append(Block(index: index))
        let image = page(blocks.count - 1)
        image.initializeMemory(as: UInt8.self, repeating: 0, count: pageSize)
        return (blocks.count - 1, image + Int(location % UInt64(pageSize)))
    }

    deinit { free(buffer) }

    func page(_ index: Int) -> UnsafeMutableRawPointer { buffer + index * pageSize }
}

/// What ended a batch's page picking early.
enum WritebackStop: Equatable {
    /// writeback_limit is used up (EIO).
    case limitReached
    /// The backing store has no free room (ENOSPC).
    case noSpace
}

/// One writeback batch in three steps, so that no page lock is held across backing I/O:
///
/// 1. pick: under each page's lock, take a page the filter accepts, reserve backing room
///    and a unit of the limit, copy the object into the batch buffer and set the
///    slot's post-processing bit;
/// 2. write: the copies go to the store, no lock held (runs of adjacent blocks as one write);
/// 3. install: under each page's lock again, a slot that still has its post-processing
///    bit (nothing changed it) frees its object and points at the store; a slot that
///    changed meanwhile keeps its new data, and the copy's room is given back.
extension ZramStore {
    /// Picks pages of `pages` from `cursor` until the batch is full, moving `cursor` past them.
    /// - Returns: why picking stopped early, if it did; `finished` says whether the range was done.
    func pickWriteback(
        _ filter: WritebackFilter, pages: Range<Int>, cursor: inout Int, batch: WritebackBatch,
        controls: WritebackControls
    ) -> (stop: WritebackStop?, finished: Bool) {
        guard let backing else { return (nil, true) }
        defer { backing.space.sealBatch() }
        while batch.entries.count < batch.capacity {
            guard cursor < pages.upperBound, let chunk = table.nextChunk(atOrAfter: cursor),
                chunk.firstPage < pages.upperBound
            else {
                cursor = pages.upperBound
                return (nil, true)
            }
            let index = max(cursor, chunk.firstPage)
            cursor = index + 1
            let slot = chunk.slots + (index - chunk.firstPage)
            let quick = slot.unlockedState
            guard quick.hasObject, !quick.isPostProcessing, filter.accepts(quick) else { continue }
            let state = slot.lock()
            guard state.hasObject, !state.isPostProcessing, filter.accepts(state) else {
                slot.unlock(setting: state)
                continue
            }
            let charge = controls.take()
            guard charge != .refused else {
                slot.unlock(setting: state)
                cursor = index
                return (.limitReached, false)
            }
            let size = state.objectSize
            guard let location = backing.space.allocate(bytes: size) else {
                slot.unlock(setting: state)
                controls.giveBack(charge)
                cursor = index
                return (.noSpace, false)
            }
            stage(slot, state, page: index, at: location, charge: charge, into: batch)
        }
        return (nil, cursor >= pages.upperBound)
    }

    /// Copies the locked slot's object into the batch's image of `location`, marks the
    /// slot as post-processed and unlocks it, so a write meanwhile can be told apart.
    func stage(
        _ slot: UnsafeMutablePointer<PageSlot>, _ state: PageState, page: Int, at location: UInt64,
        charge: WritebackControls.Charge, into batch: WritebackBatch
    ) {
        let size = state.objectSize
        let (block, copy) = batch.image(of: location)
        pool.withObject(ObjectHandle(rawValue: slot.pointee.payload), size: size) { object in
            copy.copyMemory(from: object.baseAddress!, byteCount: size)
        }
        slot.unlock(setting: PageState(rawValue: state.rawValue | PageState.postProcessBit))
        batch.entries.append(.init(page: page, state: state, location: location, charge: charge, block: block))
    }

    /// Writes the batch's block images to the store, adjacent blocks as one write.
    /// Each page whose copy reached the store counts in bd_writes.
    /// - Returns: the last store error, if any write failed (those blocks stay unwritten).
    func writeBatch(_ batch: WritebackBatch) -> ZramError? {
        guard let backing else { return nil }
        var failure: ZramError?
        var start = 0
        while start < batch.blocks.count {
            var end = start + 1
            while end < batch.blocks.count, batch.blocks[end].index == batch.blocks[end - 1].index + 1 { end += 1 }
            let bytes = UnsafeRawBufferPointer(start: batch.page(start), count: (end - start) * pageSize)
            do {
                try backing.store.write(bytes, at: batch.blocks[start].index * UInt64(pageSize))
                for block in start..<end { batch.blocks[block].written = true }
            } catch {
                failure = error
            }
            start = end
        }
        let written = batch.entries.count(where: { batch.blocks[$0.block].written })
        backing.pagesWritten.wrappingAdd(written, ordering: .relaxed)
        return failure
    }

    /// Points the unchanged slots of the batch at their copies; gives back the rest.
    /// - Returns: pages installed.
    func installBatch(_ batch: WritebackBatch, controls: WritebackControls) -> Int {
        guard let backing else { return 0 }
        var installed = 0
        for entry in batch.entries {
            guard let slot = table.existingSlot(entry.page) else { continue }
            let current = slot.lock()
            guard batch.blocks[entry.block].written, current.isPostProcessing else {
                if current.isPostProcessing {
                    slot.unlock(setting: PageState(rawValue: current.rawValue & ~PageState.postProcessBit))
                } else {
                    slot.unlock(setting: current)
                }
                backing.release(at: entry.location, bytes: entry.state.objectSize)
                controls.giveBack(entry.charge)
                continue
            }
            let handle = slot.pointee.payload
            let writtenBack = PageState.writtenBack(
                size: entry.state.objectSize, priorityBits: entry.state.rawValue & PageState.priorityMask)
            let kept = current.rawValue & PageState.accessTimeMask
            slot.pointee.payload = entry.location
            slot.unlock(setting: PageState(rawValue: writtenBack.rawValue | kept))
            counters.forget(current)
            counters.record(writtenBack)
            pool.free(ObjectHandle(rawValue: handle))
            installed += 1
        }
        batch.entries.removeAll(keepingCapacity: true)
        batch.blocks.removeAll(keepingCapacity: true)
        return installed
    }
}
