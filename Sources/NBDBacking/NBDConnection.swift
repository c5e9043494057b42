import CLibNBD
import Platform
import SwiftZram

#if canImport(Glibc)
import Glibc
#endif

/// One libnbd handle connected to the export, or none. Lives in a Mutex: the store
/// never shares a handle between two calls at once, so whoever holds the lock may
/// close and replace it.
///
/// `@unchecked Sendable`: the handle is an `OpaquePointer`, which Swift cannot judge.
/// libnbd's handles may be used from any thread (each call takes the handle's lock),
/// and the store only reaches one through the Mutex that holds it.
struct NBDConnection: @unchecked Sendable {
    /// The connected handle; nil before the first connection and after one dropped.
    var handle: OpaquePointer?
    /// The store's reconnect epoch when `handle` connected (see `NBDBackingStore`).
    var epoch: UInt64 = 0

    /// What the server said about the export when connecting.
    struct Export {
        var size: UInt64
        var canTrim: Bool
        var isReadOnly: Bool
        var minimumBlockSize: Int64
        var maximumRequest: Int64
    }

    /// Connects a new handle to `uri`, giving up after `timeout` (connect, TLS and the
    /// NBD handshake together).
    ///
    /// URI parameters that name local files (`tls-psk-file`, `tls-certificates`) are
    /// allowed: whoever can write `backing_dev` already names local paths. The vsock
    /// transport is not (znbd runs on the host, not in a guest).
    ///
    /// - Throws: `EINVAL` for a URI libnbd rejects before connecting, `EIO` for a server
    ///   that cannot be reached, refuses the export or the TLS handshake, or does not
    ///   finish connecting in time.
    static func connect(_ uri: String, timeout: Duration) throws(ZramError) -> (OpaquePointer, Export) {
        guard let handle = nbd_create() else {
            throw ZramError(.outOfMemory, "\(uri): cannot create a libnbd handle: \(lastMessage)")
        }
        nbd_set_handle_name(handle, "znbd-backing")
        nbd_set_uri_allow_local_file(handle, true)
        nbd_set_uri_allow_transports(handle, UInt32(LIBNBD_ALLOW_TRANSPORT_TCP | LIBNBD_ALLOW_TRANSPORT_UNIX))
        guard nbd_aio_connect_uri(handle, uri) == 0 else {
            let error = nbd_get_errno(), message = lastMessage
            nbd_close(handle)
            let kind: ZramError.Kind = error == EINVAL || error == EPERM ? .invalidArgument : .ioError
            throw ZramError(kind, "\(uri): \(message)")
        }
        let deadline = Deadline(after: timeout)
        while nbd_aio_is_connecting(handle) == 1 {
            let wait = deadline.pollTimeout
            guard wait != 0 else {
                nbd_close(handle)
                throw ZramError(.ioError, "\(uri): the server did not finish connecting within \(timeout)")
            }
            guard nbd_poll(handle, wait) >= 0 else { break }
        }
        guard nbd_aio_is_ready(handle) == 1 else {
            let message = lastMessage
            nbd_close(handle)
            throw ZramError(.ioError, "\(uri): \(message)")
        }
        let size = nbd_get_size(handle)
        let minimum = nbd_get_block_size(handle, LIBNBD_SIZE_MINIMUM)
        let maximum = nbd_get_block_size(handle, LIBNBD_SIZE_MAXIMUM)
        let export = Export(
            size: UInt64(max(0, size)), canTrim: nbd_can_trim(handle) == 1,
            isReadOnly: nbd_is_read_only(handle) == 1,
            minimumBlockSize: max(1, minimum), maximumRequest: maximum > 0 ? maximum : 0)
        return (handle, export)
    }

    /// Asks the server to end the session, then frees the handle.
    static func disconnect(_ handle: OpaquePointer) {
        nbd_shutdown(handle, 0)
        nbd_close(handle)
    }

    /// Whether a failed call left the handle unusable (the connection dropped).
    static func isBroken(_ handle: OpaquePointer) -> Bool {
        nbd_aio_is_dead(handle) == 1 || nbd_aio_is_closed(handle) == 1
    }

    /// libnbd's message for the calling thread's last failure.
    static var lastMessage: String {
        guard let message = nbd_get_error() else { return "unknown libnbd error" }
        return String(cString: message)
    }
}
