import CFuse3
import Platform
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One queue of FUSE over io_uring (Linux 6.14+, with the fuse module's `enable_uring`).
///
/// The kernel keeps a queue per CPU and writes each request into an idle entry of the
/// queue of the CPU that made it. One `io_uring_enter` answers every request this thread
/// has finished and takes the requests that arrived meanwhile, so a busy queue pays one
/// system call for many requests, and the kernel ends their block requests in a batch.
/// READ and WRITE are served here straight from the entry's buffers; every other
/// request is rebuilt in the classic layout and handed to libfuse, whose reply
/// `FUSEWorker.customIO` copies back into the entry.
final class FUSERingQueue: @unchecked Sendable {
    // @unchecked: the buffers are touched only by the queue's own thread (and by the
    // kernel while an entry is registered); `worker` is shared as `FUSEWorker` allows.
    let qid: UInt16
    let worker: FUSEWorker
    /// Entries registered with the kernel.
    let depth: Int
    /// Each entry's payload buffer: at least the connection's largest READ or WRITE.
    let payloadSize: Int
    private let headers: UnsafeMutablePointer<znbd_fuse_ring_header>
    private let payloads: UnsafeMutableRawPointer
    private let buffers: UnsafeMutablePointer<iovec>
    /// A request handed to libfuse, in the classic layout.
    private let classic: UnsafeMutableRawPointer
    private static let classicSize = 64 << 10

    init(qid: UInt16, worker: FUSEWorker, depth: Int, maxTransfer: Int) {
        self.qid = qid
        self.worker = worker
        self.depth = depth
        payloadSize = Self.payloadSize(maxTransfer)
        headers = .allocate(capacity: depth)
        headers.initialize(repeating: znbd_fuse_ring_header(), count: depth)
        payloads = .allocate(byteCount: depth * payloadSize, alignment: 4096)
        // Touched now, so that serving never faults the buffers in (and locked, under mlockall).
        payloads.initializeMemory(as: UInt8.self, repeating: 0, count: depth * payloadSize)
        buffers = .allocate(capacity: 2 * depth)
        for entry in 0..<depth {
            buffers[2 * entry] = iovec(iov_base: UnsafeMutableRawPointer(headers + entry), iov_len: MemoryLayout<znbd_fuse_ring_header>.size)
            buffers[2 * entry + 1] = iovec(iov_base: payloads + entry * payloadSize, iov_len: payloadSize)
        }
        classic = .allocate(byteCount: Self.classicSize, alignment: 64)
    }

    deinit {
        headers.deallocate()
        payloads.deallocate()
        buffers.deallocate()
        classic.deallocate()
    }

    /// The fuse module's `enable_uring` parameter (absent before Linux 6.14 or without
    /// CONFIG_FUSE_IO_URING).
    static let kernelSwitch = "/sys/module/fuse/parameters/enable_uring"

    /// Whether an export with `configuration` serves through ring queues.
    /// - Throws: `.unavailable` for `.on` when the kernel cannot do it or the switch cannot be turned on.
    static func decide(_ configuration: FUSEExport.Configuration) throws(FUSEExportError) -> Bool {
        let switchedOn = (try? readSmallFile(kernelSwitch)).map { $0.hasPrefix("Y") }
        switch configuration.ring {
        case .off: return false
        case .auto:
            let memory = possibleCPUs * configuration.ringThreadsPerQueue * configuration.ringDepth
                * payloadSize(configuration.ringTransfer)
            return switchedOn == true && memory <= FUSEExport.Configuration.ringMemoryBudget
        case .on:
            guard let switchedOn else {
                throw .unavailable("this kernel has no FUSE over io_uring (\(kernelSwitch) is missing; Linux 6.14+ with CONFIG_FUSE_IO_URING)")
            }
            if switchedOn { return true }
            let fd = open(kernelSwitch, O_WRONLY | O_CLOEXEC)
            guard fd >= 0, write(fd, "Y", 1) == 1 else {
                let message = String(cString: strerror(errno))
                if fd >= 0 { close(fd) }
                throw .unavailable("cannot turn on \(kernelSwitch): \(message)")
            }
            close(fd)
            return true
        }
    }

    /// An entry's payload buffer for requests of up to `maxTransfer` bytes (the kernel
    /// wants at least FUSE_MIN_READ_BUFFER, 8 KiB).
    static func payloadSize(_ maxTransfer: Int) -> Int { max(maxTransfer, 8192) }

    /// The kernel's queue count: one per possible CPU (/sys/devices/system/cpu/possible).
    static var possibleCPUs: Int {
        guard let text = try? readSmallFile("/sys/devices/system/cpu/possible") else { return 1 }
        let last = text.split(whereSeparator: { $0 == "," || $0 == "-" || $0 == "\n" }).compactMap { Int($0) }.max()
        return (last ?? 0) + 1
    }

    /// Registers the entries once INIT is done, then serves until the connection ends.
    func run(session: OpaquePointer, fileSystem: FileSystem) {
        pthread_setspecific(FUSEWorker.currentKey, Unmanaged.passUnretained(worker).toOpaque())
        defer {
            pthread_setspecific(FUSEWorker.currentKey, nil)
            worker.finished.store(true, ordering: .releasing)
        }
        var waits = 0
        while !fileSystem.initialized.load(ordering: .acquiring) {
            // INIT comes as soon as the mount is made; 10 s without it means no connection.
            guard waits < 2000, fuse_session_exited(session) == 0 else { return }
            usleep(5_000)
            waits += 1
        }
        var ring = znbd_uring()
        guard znbd_uring_init(&ring, UInt32(2 * depth)) == 0 else { return }
        defer { znbd_uring_destroy(&ring) }
        for entry in 0..<depth { prepare(&ring, entry, UInt32(znbd_fuse_ring_register), commitID: 0) }
        var live = depth
        while live > 0 {
            let result = znbd_uring_submit_and_wait(&ring, 1)
            if result == -EINTR { continue }
            if result == -EAGAIN || result == -EBUSY {
                usleep(1_000)  // out of kernel resources for a moment; the entries stay registered
                continue
            }
            if result < 0 { break }
            var userData: UInt64 = 0
            var status: Int32 = 0
            while znbd_uring_next_completion(&ring, &userData, &status) == 1 {
                let entry = Int(userData)
                // An entry the kernel gave back (teardown, or a refused registration) is done.
                guard status >= 0, entry < depth else {
                    live -= 1
                    continue
                }
                serve(entry, session: session, fileSystem: fileSystem)
                prepare(&ring, entry, UInt32(znbd_fuse_ring_commit_and_fetch), commitID: headers[entry].ent.commit_id)
            }
        }
    }

    @inline(__always)
    private func prepare(_ ring: inout znbd_uring, _ entry: Int, _ operation: UInt32, commitID: UInt64) {
        // The SQ holds 2 × depth entries and each entry has at most one command queued.
        _ = znbd_fuse_ring_prepare(&ring, worker.descriptor, operation, qid, commitID, buffers + 2 * entry, UInt64(entry))
    }

    /// Answers the request in `entry`, leaving the reply in its buffers.
    @inline(__always)
    private func serve(_ entry: Int, session: OpaquePointer, fileSystem: FileSystem) {
        let header = UnsafeMutableRawPointer(headers + entry)
        let payload = payloads + entry * payloadSize
        let request = header.load(as: fuse_in_header.self)
        let argument = header + MemoryLayout.offset(of: \znbd_fuse_ring_header.op_in)!
        var outcome: (error: Int32, count: Int)
        switch request.opcode {
        case FUSE_READ.rawValue:
            let read = argument.load(as: fuse_read_in.self)
            guard let file = OpenFile.of(handle: read.fh) else {
                outcome = (EBADF, 0)
                break
            }
            outcome = file._withUnsafeGuaranteedRef {
                fileSystem.read(
                    file: $0, offset: off_t(Int64(bitPattern: read.offset)), size: Int(read.size),
                    into: UnsafeMutableRawBufferPointer(start: payload, count: payloadSize))
            }
        case FUSE_WRITE.rawValue:
            let write = argument.load(as: fuse_write_in.self)
            guard let file = OpenFile.of(handle: write.fh) else {
                outcome = (EBADF, 0)
                break
            }
            let size = min(Int(write.size), Int(headers[entry].ent.payload_sz))
            outcome = file._withUnsafeGuaranteedRef {
                fileSystem.write(file: $0, offset: off_t(Int64(bitPattern: write.offset)), data: UnsafeRawBufferPointer(start: payload, count: size))
            }
            if outcome.error == 0 {
                payload.storeBytes(of: fuse_write_out(size: UInt32(outcome.count), padding: 0), as: fuse_write_out.self)
                outcome.count = MemoryLayout<fuse_write_out>.size
            }
        default:
            if forwardToLibfuse(entry, session: session) { return }
            outcome = (EIO, 0)
        }
        answer(entry, unique: request.unique, error: outcome.error, count: outcome.error == 0 ? outcome.count : 0)
    }

    @inline(__always)
    private func answer(_ entry: Int, unique: UInt64, error: Int32, count: Int) {
        let out = fuse_out_header(len: UInt32(MemoryLayout<fuse_out_header>.size + count), error: -error, unique: unique)
        UnsafeMutableRawPointer(headers + entry).storeBytes(of: out, as: fuse_out_header.self)
        headers[entry].ent.payload_sz = UInt32(count)
    }

    /// Rebuilds the request as /dev/fuse would have delivered it (header, first argument,
    /// the rest) and lets libfuse answer it into the entry. False if it cannot be rebuilt
    /// or libfuse did not reply.
    private func forwardToLibfuse(_ entry: Int, session: OpaquePointer) -> Bool {
        let header = UnsafeMutableRawPointer(headers + entry)
        let request = header.load(as: fuse_in_header.self)
        let headerSize = MemoryLayout<fuse_in_header>.size
        let payloadCount = Int(headers[entry].ent.payload_sz)
        let argumentSize = Int(request.len) - headerSize - payloadCount
        guard argumentSize >= 0, argumentSize <= 128, payloadCount <= payloadSize, Int(request.len) <= Self.classicSize else {
            return false
        }
        memcpy(classic, header, headerSize)
        memcpy(classic + headerSize, header + MemoryLayout.offset(of: \znbd_fuse_ring_header.op_in)!, argumentSize)
        memcpy(classic + headerSize + argumentSize, payloads + entry * payloadSize, payloadCount)
        header.storeBytes(of: fuse_out_header(), as: fuse_out_header.self)
        worker.ringReply = FUSERingReply(header: headers + entry, payload: payloads + entry * payloadSize, capacity: payloadSize)
        var buffer = fuse_buf(size: Int(request.len), flags: fuse_buf_flags(rawValue: 0), mem: classic, fd: -1, pos: 0)
        fuse_session_process_buf(session, &buffer)
        worker.ringReply = nil
        return header.load(as: fuse_out_header.self).unique != 0
    }
}

/// Where libfuse's reply to a forwarded ring request goes: the out header into the
/// entry's header buffer, the rest into its payload buffer.
struct FUSERingReply {
    let header: UnsafeMutablePointer<znbd_fuse_ring_header>
    let payload: UnsafeMutableRawPointer
    let capacity: Int

    /// Copies a reply libfuse would have written to /dev/fuse; returns its length.
    func capture(_ parts: UnsafePointer<iovec>, count: Int) -> Int {
        var total = 0
        var copied = 0
        for index in 0..<count {
            let part = parts[index]
            total += part.iov_len
            guard let base = part.iov_base else { continue }
            if index == 0 {
                memcpy(UnsafeMutableRawPointer(header), base, min(part.iov_len, MemoryLayout<fuse_out_header>.size))
            } else {
                let length = min(part.iov_len, capacity - copied)
                memcpy(payload + copied, base, length)
                copied += length
            }
        }
        header.pointee.ent.payload_sz = UInt32(copied)
        return total
    }

    /// Asks for FUSE over io_uring in libfuse's INIT reply (libfuse 3.14 cannot).
    static func askForRing(initReply reply: UnsafeMutableRawPointer) {
        let flags = reply + MemoryLayout.offset(of: \fuse_init_out.flags)!
        flags.storeBytes(of: flags.load(as: UInt32.self) | znbd_fuse_init_ext, as: UInt32.self)
        let flags2 = reply + MemoryLayout.offset(of: \fuse_init_out.flags2)!
        flags2.storeBytes(of: flags2.load(as: UInt32.self) | znbd_fuse_over_io_uring_flags2, as: UInt32.self)
    }
}
