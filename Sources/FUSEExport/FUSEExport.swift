import CFuse3
import NBD
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Serves every export of an `ExportRegistry` as a regular file in one flat FUSE
/// directory (`<mount point>/zram0`, ...), so that a loop device can turn it into a
/// block device without the nbd driver and without a second process.
///
/// It speaks libfuse's low-level API. Its own worker threads each read requests from
/// a clone of the session's `/dev/fuse` descriptor and answer on the same clone
/// (see `FUSEWorker`), calling the export straight from the request (`FileSystem`):
/// no NBD hop. With `Configuration.ring` the requests come over io_uring instead
/// (`FUSERingQueue`). File names are resolved against the registry on every lookup, so
/// devices appear and disappear with hot-add and hot-remove.
public final class FUSEExport: @unchecked Sendable {
    // @unchecked: `session` is libfuse's, used only as libfuse allows from many threads
    // (receive and process on each worker's own descriptor; exit, unmount and destroy
    // once, in `stop`, the destroy only after the workers are gone); the rest is Sendable.

    /// Where the directory is mounted.
    public let mountPoint: String
    public let configuration: Configuration

    let fileSystem: FileSystem
    let session: OpaquePointer
    /// Whether `init` made the mount point (removed again by `stop`).
    private let createdMountPoint: Bool
    let workers = Mutex<[FUSEWorker]>([])
    private let stopped = Atomic<Bool>(false)

    /// FUSE over io_uring (Linux 6.14+): `auto` uses it when the fuse module's
    /// `enable_uring` parameter is on and the buffers fit `ringMemoryBudget`; `on` turns
    /// the parameter on (root) and fails if it cannot.
    public enum RingMode: String, Sendable, CaseIterable {
        case off, auto, on
    }

    /// Whether the workers include ring queues (the kernel switches to them once every
    /// queue has registered).
    public let usesRing: Bool

    public struct Configuration: Sendable {
        /// Worker threads, each with its own cloned `/dev/fuse` descriptor.
        public var threads: Int
        /// The largest READ and WRITE the kernel sends (libfuse's ceiling is 1 MiB).
        public var maxTransfer: Int = 1 << 20
        /// Mark the workers with PR_SET_IO_FLUSHER (swap safety; needs CAP_SYS_RESOURCE).
        public var markThreadsAsIOFlushers: Bool = false
        /// Whether requests come over io_uring (`FUSERingQueue`) rather than /dev/fuse reads.
        public var ring: RingMode = .off
        /// Entries per ring thread: more batch more small requests per system call, but
        /// requests given to a busy thread's entries wait for it (with 1 MiB requests, 4
        /// entries per thread made QD4 reads 40 % slower than 3).
        public var ringDepth: Int = 8
        /// Threads serving each ring queue (the kernel has one queue per possible CPU).
        public var ringThreadsPerQueue: Int = 2
        /// The largest READ and WRITE with the ring: every entry needs a buffer this size,
        /// and the kernel splits larger requests over several entries. With 256 KiB and 8
        /// entries, 4 KiB random reads at QD32 ran 10 % faster than with 1 MiB and 3
        /// entries, and 1 MiB reads as fast.
        public static let ringMaxTransfer = 256 << 10
        /// `auto` leaves the ring off when its buffers would take more than this.
        public static let ringMemoryBudget = 64 << 20

        /// The largest READ and WRITE when the ring is used.
        var ringTransfer: Int { min(maxTransfer, Self.ringMaxTransfer) }

        /// Two workers per core, at least four: a worker blocks in the store while
        /// another reads the next request.
        public static var defaultThreads: Int { max(4, 2 * Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

        public init(threads: Int = Configuration.defaultThreads, markThreadsAsIOFlushers: Bool = false) {
            self.threads = threads
            self.markThreadsAsIOFlushers = markThreadsAsIOFlushers
        }
    }

    /// Mounts the directory and starts the workers.
    /// - Throws: `FUSEExportError` when `/dev/fuse` is missing, the mount fails or no worker
    ///   starts; nothing stays mounted then.
    public init(exports: ExportRegistry, mountPoint: String, configuration: Configuration = Configuration()) throws(FUSEExportError) {
        guard access("/dev/fuse", R_OK | W_OK) == 0 else { throw .unavailable("/dev/fuse is missing or not accessible") }
        guard (1...256).contains(configuration.threads) else { throw .invalid("threads must be 1...256") }
        guard (1...64).contains(configuration.ringDepth), (1...16).contains(configuration.ringThreadsPerQueue) else {
            throw .invalid("ringDepth must be 1...64 and ringThreadsPerQueue 1...16")
        }
        guard configuration.maxTransfer >= 4096, configuration.maxTransfer <= 1 << 20 else {
            throw .invalid("maxTransfer must be 4 KiB...1 MiB")
        }
        self.mountPoint = mountPoint
        self.configuration = configuration
        usesRing = try FUSERingQueue.decide(configuration)
        let maxTransfer = usesRing ? configuration.ringTransfer : configuration.maxTransfer
        fileSystem = FileSystem(exports: exports, maxTransfer: maxTransfer, wantsRing: usesRing)
        (session, createdMountPoint) = try Self.mount(fileSystem, at: mountPoint, maxRead: maxTransfer)
        do {
            try startWorkers()
        } catch {
            stop()
            throw error
        }
    }

    deinit { stop() }

    /// Unmounts (lazily: a loop device still holding a file keeps the connection until
    /// it lets go), aborts the connection so that no worker stays blocked, waits for the
    /// workers and frees the session. Idempotent.
    public func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let connection = connectionDirectory
        fuse_session_exit(session)
        fuse_session_unmount(session)
        if let connection { abort(connection: connection) }
        let allStopped = waitForWorkers(seconds: 3)
        // A worker still blocked in the kernel would touch a freed session: keep it then.
        if allStopped { fuse_session_destroy(session) }
        if createdMountPoint { rmdir(mountPoint) }  // fails, harmlessly, while a lazy unmount lingers
    }
}

/// Why the FUSE export could not start.
public struct FUSEExportError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable { case unavailable, invalid, mountFailed, threadFailed }
    public var kind: Kind
    public var message: String

    public var description: String { message }

    static func unavailable(_ message: String) -> Self { .init(kind: .unavailable, message: message) }
    static func invalid(_ message: String) -> Self { .init(kind: .invalid, message: message) }
    static func mountFailed(_ message: String) -> Self { .init(kind: .mountFailed, message: message) }
    static func threadFailed(_ message: String) -> Self { .init(kind: .threadFailed, message: message) }
}
