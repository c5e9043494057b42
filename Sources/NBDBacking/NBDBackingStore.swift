import CLibNBD
import Synchronization
import SwiftZram

#if canImport(Glibc)
import Glibc
#endif

/// A backing store on an NBD export, reached through libnbd: `nbd://host[:port]/export`,
/// `nbd+unix:///export?socket=PATH`, and their TLS forms `nbds://` and `nbds+unix://`
/// (with `tls-psk-file=`, `tls-certificates=`, `tls-verify-peer=` as libnbd reads them).
///
/// **Connections.** libnbd's synchronous calls lock their handle for the whole round
/// trip, so one handle carries one request at a time. The store keeps a small fixed
/// pool of connections and sends each call to the next one in turn: as many round trips
/// in flight as the device has threads doing backing I/O (its writeback and the request
/// threads reading written-back pages), without a connection per thread on the server.
///
/// **A dropped connection** fails the request that found it (`EIO`), and moves the
/// store to a new epoch: every connection made before it is replaced on its next use,
/// with one connection attempt per call. After a server restart, the first call that
/// reaches it succeeds; while it is down, each call fails fast with `EIO`.
///
/// A server that stops answering without closing the connection stalls the calls on
/// that connection (libnbd's synchronous calls have no timeout).
public final class NBDBackingStore: BackingStore {
    public let name: String
    public let capacity: UInt64
    /// Whether the export accepted NBD_CMD_TRIM when the store opened.
    public let canTrim: Bool

    /// The largest request sent at once: the server's maximum, at most 32 MiB.
    private let requestLimit: Int
    private let connections: InlineArray<4, Mutex<NBDConnection>>
    private let nextConnection = Atomic<Int>(0)
    private let epoch = Atomic<UInt64>(0)
    private let closed = Atomic<Bool>(false)

    /// How long connecting (TCP or Unix connect, TLS and the NBD handshake) may take:
    /// a server that accepts and never speaks fails the `backing_dev` write (or a
    /// reconnect) instead of holding the thread that asked, within the control
    /// client's own 60 s.
    public static let connectTimeout: Duration = .seconds(20)

    /// Connects to `uri` and checks the export.
    /// - Throws: `EINVAL` for a malformed or unsupported URI, a read-only export, an
    ///   export under one 4 KiB page (the kernel refuses such a backing device too) or
    ///   one whose block size cannot take 4 KiB requests; `EIO` when the server cannot
    ///   be reached, refuses the export or TLS, or does not finish connecting within
    ///   `connectTimeout`.
    public static func open(
        _ uri: String, connectTimeout: Duration = NBDBackingStore.connectTimeout
    ) throws(ZramError) -> NBDBackingStore {
        guard NBDURI.isSupported(uri) else {
            throw ZramError(
                .invalidArgument,
                "\(uri): not a supported NBD URI (\(NBDURI.schemes.joined(separator: ", ")))")
        }
        let (handle, export) = try NBDConnection.connect(uri, timeout: connectTimeout)
        let refusal: String? =
            if export.isReadOnly {
                "the export is read-only"
            } else if export.size < 4096 {
                "the export has \(export.size) bytes, under one 4 KiB page"
            } else if export.minimumBlockSize > 4096 || 4096 % export.minimumBlockSize != 0 {
                "the export's minimum block size \(export.minimumBlockSize) does not divide 4 KiB"
            } else {
                nil
            }
        if let refusal {
            NBDConnection.disconnect(handle)
            throw ZramError(.invalidArgument, "\(uri): \(refusal)")
        }
        return NBDBackingStore(uri: uri, first: handle, export)
    }

    private init(uri: String, first: OpaquePointer, _ export: NBDConnection.Export) {
        name = uri
        capacity = export.size
        canTrim = export.canTrim
        let limit = 32 << 20
        requestLimit = export.maximumRequest >= 4096 ? min(limit, Int(export.maximumRequest) & ~4095) : limit
        connections = InlineArray { index in Mutex(NBDConnection(handle: index == 0 ? first : nil)) }
    }

    deinit { close() }

    /// The number of connections the store opens at most.
    public var connectionLimit: Int { connections.count }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(ZramError) {
        guard let base = buffer.baseAddress else { return }
        try inRequests("read", count: buffer.count, offset: offset) { handle, done, count, position in
            nbd_pread(handle, base + done, count, position, 0)
        }
    }

    public func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws(ZramError) {
        guard let base = buffer.baseAddress else { return }
        try inRequests("write", count: buffer.count, offset: offset) { handle, done, count, position in
            nbd_pwrite(handle, base + done, count, position, 0)
        }
    }

    /// Checks the range, then runs `call` on pieces of at most `requestLimit` bytes:
    /// (handle, bytes done, piece length, piece offset) → libnbd's result.
    private func inRequests(
        _ what: StaticString, count total: Int, offset: UInt64, _ call: (OpaquePointer, Int, Int, UInt64) -> Int32
    ) throws(ZramError) {
        try checkRange(count: total, offset: offset, what)
        var done = 0
        while done < total {
            let count = min(requestLimit, total - done)
            let position = offset + UInt64(done)
            try perform(what, at: position) { call($0, done, count, position) }
            done += count
        }
    }

    /// Sends NBD_CMD_TRIM when the export takes it; failures are ignored (the space
    /// stays taken), but a dropped connection still moves the store to a new epoch.
    public func discard(at offset: UInt64, length: UInt64) {
        guard canTrim, length > 0, offset < capacity, length <= capacity - offset else { return }
        var done: UInt64 = 0
        while done < length {
            let count = min(UInt64(requestLimit), length - done)
            let position = offset + done
            do {
                try perform("trim", at: position) { handle in
                    nbd_can_trim(handle) == 1 ? nbd_trim(handle, count, position, 0) : 0
                }
            } catch {
                return
            }
            done += count
        }
    }

    /// An export keeps its size even when it is smaller than `bytes`, as the kernel
    /// keeps a backing block device's: writeback runs out of space (`ENOSPC`) instead.
    public func prepare(capacity bytes: UInt64) throws(ZramError) {}

    public func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        for index in connections.indices {
            connections[index].withLock { connection in
                if let handle = connection.handle { NBDConnection.disconnect(handle) }
                connection.handle = nil
            }
        }
    }

    @inline(__always)
    private func checkRange(count: Int, offset: UInt64, _ operation: StaticString) throws(ZramError) {
        let end = offset.addingReportingOverflow(UInt64(count))
        if end.overflow || end.partialValue > capacity {
            throw ZramError(
                .ioError, "\(name): \(operation) of \(count) bytes at \(offset) is past its \(capacity) bytes")
        }
    }

    /// Runs `call` on the next connection, connecting it first when it has none or
    /// was made before the current epoch.
    /// - Throws: `EIO` (`ENOSPC` when the server says so) for a failed call or reconnection.
    @inline(__always)
    private func perform(
        _ operation: StaticString, at offset: UInt64, _ call: (OpaquePointer) -> Int32
    ) throws(ZramError) {
        let turn = UInt(bitPattern: nextConnection.wrappingAdd(1, ordering: .relaxed).oldValue)
        let index = Int(turn % UInt(connections.count))
        let current = epoch.load(ordering: .acquiring)
        try connections[index].withLock { (connection: inout NBDConnection) throws(ZramError) in
            // Checked under the lock: close() marks the store closed before it takes each
            // connection's lock, so nothing reconnects behind it.
            guard !closed.load(ordering: .acquiring) else {
                throw ZramError(.ioError, "\(name): \(operation) after close")
            }
            if let stale = connection.handle, connection.epoch != current {
                NBDConnection.disconnect(stale)
                connection.handle = nil
            }
            let handle: OpaquePointer
            if let connected = connection.handle {
                handle = connected
            } else {
                handle = try reconnect(&connection, epoch: current)
            }
            guard call(handle) == 0 else {
                let error = nbd_get_errno(), message = NBDConnection.lastMessage
                if NBDConnection.isBroken(handle) {
                    nbd_close(handle)
                    connection.handle = nil
                    // One epoch per outage, however many connections find it.
                    _ = epoch.compareExchange(
                        expected: current, desired: current &+ 1, ordering: .acquiringAndReleasing)
                }
                let kind: ZramError.Kind = error == ENOSPC || error == EDQUOT || error == EFBIG ? .noSpace : .ioError
                throw ZramError(kind, "\(name): \(operation) at byte \(offset): \(message)")
            }
        }
    }

    /// One connection attempt; a server that came back smaller than the store is refused.
    private func reconnect(_ connection: inout NBDConnection, epoch current: UInt64) throws(ZramError) -> OpaquePointer {
        let handle: OpaquePointer
        let export: NBDConnection.Export
        do {
            (handle, export) = try NBDConnection.connect(name, timeout: Self.connectTimeout)
        } catch {
            throw ZramError(.ioError, "reconnecting: \(error.message)")
        }
        guard export.size >= capacity, !export.isReadOnly else {
            NBDConnection.disconnect(handle)
            throw ZramError(.ioError, "\(name): the export came back read-only or smaller than \(capacity) bytes")
        }
        connection.handle = handle
        connection.epoch = current
        return handle
    }
}
