/// `idle`: marks stored pages idle, all of them or those not accessed for an age
/// (zram's CONFIG_ZRAM_TRACK_ENTRY_ACTIME), for writeback and recompression to pick.
extension ZramDevice {
    /// What `idle` was asked to mark.
    enum IdleSelection: Equatable {
        case all
        /// Pages whose last read or write is more than this many seconds old.
        case olderThan(seconds: UInt64)

        /// Parses `all` or an age in seconds (decimal, or hex with `0x`, as the kernel's kstrtouint).
        init(parsing text: String) throws(ZramError) {
            if text == "all" {
                self = .all
                return
            }
            let age: UInt32? = text.hasPrefix("0x") ? UInt32(text.dropFirst(2), radix: 16) : UInt32(text)
            guard let age else { throw .invalid("idle takes 'all' or an age in seconds, not '\(text)'") }
            self = .olderThan(seconds: UInt64(age))
        }
    }

    /// Marks pages idle as `selection` says; with an age, pages accessed since lose the mark (as zram).
    public func markIdle(olderThanSeconds age: UInt64) { markIdle(.olderThan(seconds: age)) }

    func markIdle(_ selection: IdleSelection, batchChunks: Int = ZramDevice.idleBatchChunks, afterEachBatch: () -> Void = {}) {
        switch selection {
        case .all:
            markAllIdle(batchChunks: batchChunks, afterEachBatch: afterEachBatch)
        case .olderThan(let age):
            var cutoff: UInt64?
            markIdle(batchChunks: batchChunks, afterEachBatch: afterEachBatch) { store in
                // Fixed at the first batch, so the scan's own length does not age pages.
                if cutoff == nil { cutoff = store.clock.now >= age ? store.clock.now - age : 0 }
                return cutoff!
            }
        }
    }
}
