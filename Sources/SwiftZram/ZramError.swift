#if canImport(Glibc)
import Glibc
#endif

/// An error from a zram device, carrying the errno that the kernel's zram
/// would return for the same mistake.
///
/// The control surface reports ``errno`` by name (`EBUSY`, `EINVAL`, ...);
/// the NBD layer maps it to a wire error (see ``ZramError/kind``).
public struct ZramError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, independent of the human-readable message.
    public enum Kind: Hashable, Sendable {
        /// `EBUSY`: the device is initialised or in use, so this cannot change now.
        case busy
        /// `EINVAL`: a malformed or out-of-range value.
        case invalidArgument
        /// `ENOMEM`: the operating system refused memory.
        case outOfMemory
        /// `ENOMEM` in the kernel; the store would pass `mem_limit`. NBD answers `ENOSPC`.
        case memoryLimitReached
        /// `ENXIO`: I/O to a device that has no disksize yet.
        case notInitialized
        /// `EINVAL`: the request reaches past the end of the device.
        case outOfRange
        /// `EIO`: stored data failed to decompress, backing I/O failed, or writeback_limit is used up.
        case ioError
        /// `ENOSPC`: the backing device has no free block left.
        case noSpace
        /// `ENODEV`: writeback without a backing device.
        case noDevice
        /// `EAGAIN`: another writeback or recompression is running.
        case tryAgain
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// The errno the kernel's zram returns for this kind of failure.
    public var errno: Int32 {
        switch kind {
        case .busy: EBUSY
        case .invalidArgument, .outOfRange: EINVAL
        case .outOfMemory, .memoryLimitReached: ENOMEM
        case .notInitialized: ENXIO
        case .ioError: EIO
        case .noSpace: ENOSPC
        case .noDevice: ENODEV
        case .tryAgain: EAGAIN
        }
    }

    /// The errno's symbolic name, as users see it in messages (`EBUSY`).
    public var errnoName: String {
        switch kind {
        case .busy: "EBUSY"
        case .invalidArgument, .outOfRange: "EINVAL"
        case .outOfMemory, .memoryLimitReached: "ENOMEM"
        case .notInitialized: "ENXIO"
        case .ioError: "EIO"
        case .noSpace: "ENOSPC"
        case .noDevice: "ENODEV"
        case .tryAgain: "EAGAIN"
        }
    }

    public var description: String { "\(message) (\(errnoName))" }

    public static func busy(_ message: String) -> ZramError { ZramError(.busy, message) }
    public static func invalid(_ message: String) -> ZramError { ZramError(.invalidArgument, message) }
}
