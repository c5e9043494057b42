#if canImport(Glibc)
import Glibc
#endif
import SwiftZram

/// A refused or failed control request. The kind travels on the wire as its
/// errno name (`"errno":"EBUSY"`) and decodes back into the same kind, so callers
/// switch on it instead of reading the message.
public struct ControlError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The errno a request failed with, as zram's sysfs files and the kernel's hot_add/hot_remove answer.
    public enum Kind: String, Codable, Sendable, CaseIterable {
        /// `EBUSY`: initialised or in use, so it cannot change now.
        case busy = "EBUSY"
        /// `EINVAL`: a malformed request or an out-of-range value.
        case invalidArgument = "EINVAL"
        /// `ENOMEM`: no memory, or the store would pass `mem_limit`.
        case outOfMemory = "ENOMEM"
        /// `ENOSPC`: no space left for the data.
        case noSpace = "ENOSPC"
        /// `E2BIG`: a value too large for its attribute.
        case tooBig = "E2BIG"
        /// `ENODEV`: no device of that name.
        case noDevice = "ENODEV"
        /// `ENXIO`: the device has no disksize yet.
        case notInitialized = "ENXIO"
        /// `EIO`: stored data failed to decompress, or the control connection failed.
        case ioError = "EIO"
        /// `EMSGSIZE`: a request line longer than the server accepts.
        case messageTooLong = "EMSGSIZE"
        /// `EPROTO`: an answer that is not a control response.
        case protocolError = "EPROTO"
        /// `ENOENT`: no control socket at that path.
        case noSocket = "ENOENT"
        /// `ECONNREFUSED`: a socket file with no server behind it.
        case connectionRefused = "ECONNREFUSED"
        /// `EAGAIN`: another writeback or recompression is running; try again.
        case tryAgain = "EAGAIN"
        /// `EACCES`: the control socket is not ours to use, or not served by root or us.
        case permissionDenied = "EACCES"

        /// The kind for a C errno; anything this surface does not name is EIO.
        public init(errno code: Int32) {
            switch code {
            case EBUSY: self = .busy
            case EINVAL: self = .invalidArgument
            case ENOMEM: self = .outOfMemory
            case ENOSPC: self = .noSpace
            case E2BIG: self = .tooBig
            case ENODEV: self = .noDevice
            case ENXIO: self = .notInitialized
            case EMSGSIZE: self = .messageTooLong
            case EPROTO: self = .protocolError
            case ENOENT: self = .noSocket
            case ECONNREFUSED: self = .connectionRefused
            case EAGAIN: self = .tryAgain
            case EACCES: self = .permissionDenied
            default: self = .ioError
            }
        }
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// A device error with the errno zram gives it.
    public init(_ error: ZramError) {
        self.init(Kind(errno: error.errno), error.message)
    }

    /// `MESSAGE (EBUSY)`: what `znbd` prints on stderr.
    public var description: String { "\(message) (\(kind.rawValue))" }

    public static func busy(_ message: String) -> ControlError { ControlError(.busy, message) }
    public static func invalid(_ message: String) -> ControlError { ControlError(.invalidArgument, message) }
    public static func noDevice(_ name: String) -> ControlError { ControlError(.noDevice, "no device named \(name)") }
}
