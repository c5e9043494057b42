import Synchronization

/// One page's entry in the device table: 16 bytes, like the kernel's
/// `struct zram_table_entry` (handle + flags).
///
/// `state` packs the flags, the object size and a lock bit; `payload` is the
/// allocator handle of a stored object, or the fill word of a same-filled page.
/// `payload` is only read or written while the lock bit is held.
struct PageSlot: ~Copyable {
    let state: Atomic<UInt64>
    var payload: UInt64

    init() {
        state = Atomic(0)
        payload = 0
    }
}

/// The decoded bits of `PageSlot.state`.
struct PageState: Equatable {
    var rawValue: UInt64

    /// The object size in bytes (1...4096) when `hasObject`.
    static let sizeMask: UInt64 = 0x1FFF
    /// `payload` is an allocator handle.
    static let objectBit: UInt64 = 1 << 13
    /// `payload` is the fill word of a same-filled page (zram's ZRAM_SAME).
    static let sameBit: UInt64 = 1 << 14
    /// The object is a raw, incompressible page (zram's ZRAM_HUGE).
    static let hugeBit: UInt64 = 1 << 15
    /// Not accessed since the last `idle all` (zram's ZRAM_IDLE).
    static let idleBit: UInt64 = 1 << 16
    /// Same-filled with the zero word: reads as zeros but counts as written.
    static let zeroFillBit: UInt64 = 1 << 17
    /// `payload` is a compression queue slot holding the raw page, not yet compressed.
    static let queuedBit: UInt64 = 1 << 18
    /// A queued page the compressor could not store because the system refused
    /// memory: reads fail with EIO until the page is written again or discarded.
    static let lostBit: UInt64 = 1 << 19
    /// `payload` is a location in the backing store (zram's ZRAM_WB); the size and
    /// priority bits still describe the object as it was written there.
    static let writtenBackBit: UInt64 = 1 << 20
    /// Recompression failed at the highest priority: skip it from now on (ZRAM_INCOMPRESSIBLE).
    static let incompressibleBit: UInt64 = 1 << 21
    /// The priority (0...3) of the algorithm that compressed the object: 0 is the primary.
    static let priorityShift: UInt64 = 22
    static let priorityMask: UInt64 = 0x3 << priorityShift
    /// Seconds since the device was initialised at the last read or write (zram's ac_time),
    /// for `idle` with an age. Bits 32...62.
    static let accessTimeShift: UInt64 = 32
    static let accessTimeMask: UInt64 = 0x7FFF_FFFF << accessTimeShift
    /// Chosen by a running recompression or writeback (zram's ZRAM_PP_SLOT; the two never
    /// run at once). Every write, discard and reset replaces the state without it, so the
    /// post-processor can tell the page changed while it worked on a copy, and then drops its
    /// result. Whatever replaces a page's object must leave `objectBit` clear when `payload`
    /// is no longer an allocator handle.
    static let postProcessBit: UInt64 = 1 << 24
    /// Held by a thread working on this page.
    static let lockBit: UInt64 = 1 << 63

    static let empty = PageState(rawValue: 0)

    static func object(size: Int, huge: Bool) -> PageState {
        PageState(rawValue: UInt64(size) | objectBit | (huge ? hugeBit : 0))
    }

    static let queued = PageState(rawValue: queuedBit | UInt64(pageSize))

    static let lost = PageState(rawValue: lostBit)

    /// A page whose object lies in the backing store at byte offset `payload`: `size` bytes,
    /// raw when `size` is a whole page, else compressed by the algorithm of `priority`.
    static func writtenBack(size: Int, priorityBits: UInt64) -> PageState {
        PageState(rawValue: UInt64(size) | writtenBackBit | (priorityBits & priorityMask))
    }

    static func same(_ word: UInt64) -> PageState {
        PageState(rawValue: sameBit | (word == 0 ? zeroFillBit : 0))
    }

    var hasObject: Bool { rawValue & Self.objectBit != 0 }
    var isSame: Bool { rawValue & Self.sameBit != 0 }
    var isHuge: Bool { rawValue & Self.hugeBit != 0 }
    var isIdle: Bool { rawValue & Self.idleBit != 0 }
    var isZeroFilled: Bool { rawValue & Self.zeroFillBit != 0 }
    var isQueued: Bool { rawValue & Self.queuedBit != 0 }
    var isLost: Bool { rawValue & Self.lostBit != 0 }
    /// Stored in any form (counts in orig_data_size), written-back pages included.
    var isStored: Bool { rawValue & (Self.objectBit | Self.sameBit | Self.queuedBit | Self.writtenBackBit) != 0 }
    var objectSize: Int { Int(rawValue & Self.sizeMask) }

    var isWrittenBack: Bool { rawValue & Self.writtenBackBit != 0 }
    var isIncompressible: Bool { rawValue & Self.incompressibleBit != 0 }
    var isPostProcessing: Bool { rawValue & Self.postProcessBit != 0 }
    /// The priority of the algorithm that compressed the object (0 = primary).
    var priority: Int { Int((rawValue & Self.priorityMask) >> Self.priorityShift) }
    /// Seconds since init at the last read or write.
    var accessTime: UInt64 { (rawValue & Self.accessTimeMask) >> Self.accessTimeShift }

    var withoutLock: PageState { PageState(rawValue: rawValue & ~Self.lockBit) }
    var withoutIdle: PageState { PageState(rawValue: rawValue & ~Self.idleBit) }

    /// The state after a read or write at `seconds`: not idle, stamped with the time.
    @inline(__always)
    func accessed(at seconds: UInt64) -> PageState {
        PageState(rawValue: (rawValue & ~(Self.idleBit | Self.accessTimeMask)) | (seconds << Self.accessTimeShift))
    }
}
