import CFuse3
import Platform
import NBD
import Platform
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One worker thread of a `FUSEExport`: its own clone of the session's `/dev/fuse`
/// descriptor, libfuse's receive buffer, and a reply buffer for READ, all made once.
///
/// libfuse 3.14 reads and writes the session's descriptor unless given custom I/O;
/// `customIO` sends both to the calling worker's clone, found through a thread-specific
/// key, so each request is answered on the descriptor it came from (the kernel keeps a
/// processing queue per clone).
final class FUSEWorker: @unchecked Sendable {
    // @unchecked: the buffers and `receiveBuffer` are touched only by the worker's own
    // thread; `finished` is atomic; `descriptor` is immutable.
    let descriptor: Int32
    /// READ replies are decompressed here (maxTransfer bytes, page-aligned).
    let readBuffer: UnsafeMutableRawBufferPointer
    /// libfuse's request buffer (allocated by libfuse on the first receive, freed here).
    var receiveBuffer = fuse_buf()
    /// Open flags libfuse 3.14 cannot express, ORed into the next OPEN reply on this thread.
    var pendingOpenFlags: UInt32 = 0
    /// Set while this thread answers INIT for a file system that wants FUSE over io_uring:
    /// the reply asks for it, and the file system learns when the kernel has taken it.
    var pendingRingInit: FileSystem?
    /// Set while a ring queue has libfuse answer a request: the reply goes into the ring
    /// entry instead of the descriptor.
    var ringReply: FUSERingReply?
    let finished = Atomic<Bool>(false)

    init(cloning sessionDescriptor: Int32, maxTransfer: Int) throws(FUSEExportError) {
        let fd = open("/dev/fuse", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw .unavailable("cannot open /dev/fuse: \(String(cString: strerror(errno)))") }
        guard znbd_fuse_clone_device(fd, sessionDescriptor) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw .unavailable("FUSE_DEV_IOC_CLONE failed: \(message)")
        }
        descriptor = fd
        readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: maxTransfer, alignment: 4096)
    }

    deinit {
        close(descriptor)
        readBuffer.deallocate()
        free(receiveBuffer.mem)
    }

    /// Receives and processes requests until the session ends (unmount, abort or `stop`).
    func run(session: OpaquePointer) {
        let me = Unmanaged.passUnretained(self).toOpaque()
        pthread_setspecific(Self.currentKey, me)
        defer {
            pthread_setspecific(Self.currentKey, nil)
            finished.store(true, ordering: .releasing)
        }
        while fuse_session_exited(session) == 0 {
            let received = fuse_session_receive_buf(session, &receiveBuffer)
            if received == -EINTR { continue }
            if received <= 0 { break }
            fuse_session_process_buf(session, &receiveBuffer)
        }
    }

    /// The worker running on the calling thread (nil on other threads).
    static var current: FUSEWorker? {
        guard let pointer = pthread_getspecific(currentKey) else { return nil }
        return Unmanaged<FUSEWorker>.fromOpaque(pointer).takeUnretainedValue()
    }

    static let currentKey: pthread_key_t = {
        var key = pthread_key_t()
        precondition(pthread_key_create(&key, nil) == 0, "no thread-specific key left for FUSE workers")
        return key
    }()

    /// Reads and writes on the calling worker's clone (the given descriptor elsewhere).
    static let customIO = fuse_custom_io(
        writev: { fd, iov, count, _ in
            guard let pointer = pthread_getspecific(FUSEWorker.currentKey) else { return writev(fd, iov, count) }
            let worker = Unmanaged<FUSEWorker>.fromOpaque(pointer).takeUnretainedValue()
            if worker.pendingOpenFlags != 0, let iov, count == 2,
                iov[1].iov_len == MemoryLayout<fuse_open_out>.size, let reply = iov[1].iov_base
            {
                let flags = reply.advanced(by: MemoryLayout<fuse_open_out>.offset(of: \.open_flags)!)
                flags.storeBytes(of: flags.load(as: UInt32.self) | worker.pendingOpenFlags, as: UInt32.self)
            }
            worker.pendingOpenFlags = 0
            if let reply = worker.ringReply, let iov { return reply.capture(iov, count: Int(count)) }
            guard let fileSystem = worker.pendingRingInit else { return writev(worker.descriptor, iov, count) }
            worker.pendingRingInit = nil
            if let iov, count == 2, iov[1].iov_len >= MemoryLayout<fuse_init_out>.size, let reply = iov[1].iov_base {
                FUSERingReply.askForRing(initReply: reply)
            }
            let written = writev(worker.descriptor, iov, count)
            // The kernel has processed the reply (and set up the connection) when writev returns.
            if written > 0 { fileSystem.initialized.store(true, ordering: .releasing) }
            return written
        },
        read: { fd, buffer, length, _ in
            guard let pointer = pthread_getspecific(FUSEWorker.currentKey) else { return read(fd, buffer, length) }
            return read(Unmanaged<FUSEWorker>.fromOpaque(pointer).takeUnretainedValue().descriptor, buffer, length)
        },
        splice_receive: nil, splice_send: nil)
}

extension FUSEExport {
    /// Starts `configuration.threads` workers; at least one must start.
    func startWorkers() throws(FUSEExportError) {
        let sessionDescriptor = fuse_session_fd(session)
        var started: [FUSEWorker] = []
        var lastError: FUSEExportError?
        for index in 0..<configuration.threads {
            let worker: FUSEWorker
            do { worker = try FUSEWorker(cloning: sessionDescriptor, maxTransfer: fileSystem.maxTransfer) } catch {
                lastError = error
                break
            }
            let markAsFlusher = configuration.markThreadsAsIOFlushers
            let sessionPointer = UInt(bitPattern: session)
            do {
                try PosixThread.detach(name: "znbd-fuse-\(index)") {
                    if markAsFlusher { try? ProcessHardening.markCurrentThreadAsIOFlusher() }
                    worker.run(session: OpaquePointer(bitPattern: sessionPointer)!)
                }
            } catch {
                lastError = .threadFailed("cannot start FUSE worker thread \(index): \(error)")
                break
            }
            started.append(worker)
        }
        if usesRing && !started.isEmpty {
            started += startRingQueues(sessionDescriptor: sessionDescriptor)
        }
        workers.withLock { $0 = started }
        if started.isEmpty { throw lastError ?? .threadFailed("no FUSE worker started") }
    }

    /// One thread per ring queue; a queue that cannot start leaves the ring unready, and
    /// the kernel keeps using /dev/fuse.
    func startRingQueues(sessionDescriptor: Int32) -> [FUSEWorker] {
        var started: [FUSEWorker] = []
        let sessionPointer = UInt(bitPattern: session)
        let threadsPerQueue = configuration.ringThreadsPerQueue
        for index in 0..<(FUSERingQueue.possibleCPUs * threadsPerQueue) {
            let qid = index / threadsPerQueue
            // The queue's own descriptor and thread context; its READs go to the ring entries,
            // so the worker's read buffer stays at one page.
            guard let worker = try? FUSEWorker(cloning: sessionDescriptor, maxTransfer: 4096) else { break }
            let queue = FUSERingQueue(qid: UInt16(qid), worker: worker, depth: configuration.ringDepth, maxTransfer: fileSystem.maxTransfer)
            let markAsFlusher = configuration.markThreadsAsIOFlushers
            let fileSystem = fileSystem
            do {
                try PosixThread.detach(name: "znbd-ring-\(qid)-\(index % threadsPerQueue)") {
                    if markAsFlusher { try? ProcessHardening.markCurrentThreadAsIOFlusher() }
                    queue.run(session: OpaquePointer(bitPattern: sessionPointer)!, fileSystem: fileSystem)
                }
            } catch { break }
            started.append(worker)
        }
        return started
    }

    /// Waits up to `seconds` for every worker to return; true if they all did.
    func waitForWorkers(seconds: Int) -> Bool {
        let all = workers.withLock { $0 }
        for _ in 0..<(seconds * 100) {
            if all.allSatisfy({ $0.finished.load(ordering: .acquiring) }) { return true }
            usleep(10_000)
        }
        return false
    }
}
