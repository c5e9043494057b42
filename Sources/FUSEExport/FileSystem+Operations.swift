import CFuse3

#if canImport(Glibc)
import Glibc
#endif

/// libfuse's operation table: C callbacks that find the `FileSystem` (the session's
/// userdata) and the `OpenFile` (the handle) without retaining them, and forward.
extension FileSystem {
    static var operations: fuse_lowlevel_ops {
        var operations = fuse_lowlevel_ops()
        operations.`init` = { userdata, connection in
            guard let connection else { return }
            // 1 MiB WRITEs (max_read bounds READs); many async direct-I/O requests in
            // flight (the kernel's default of 12 background requests would cap a QD32 loop).
            connection.pointee.max_write = 1 << 20
            connection.pointee.max_background = 128
            connection.pointee.congestion_threshold = 96
            connection.pointee.want |= UInt32(FUSE_CAP_ASYNC_DIO) & connection.pointee.capable
            connection.pointee.want &= ~UInt32(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE)
            if let userdata {
                let fileSystem = Unmanaged<FileSystem>.fromOpaque(userdata).takeUnretainedValue()
                connection.pointee.max_write = UInt32(fileSystem.maxTransfer)
                // libfuse 3.14 checks this against the max_read mount option given to the session.
                connection.pointee.max_read = UInt32(fileSystem.maxTransfer)
                if fileSystem.wantsRing { FUSEWorker.current?.pendingRingInit = fileSystem }
            }
        }
        operations.lookup = { request, parent, name in
            guard let request else { return }
            guard let name else { return reply(request, EINVAL) }
            FileSystem.of(request)._withUnsafeGuaranteedRef { $0.lookup(request, parent: parent, name: name) }
        }
        operations.getattr = { request, inode, _ in
            guard let request else { return }
            FileSystem.of(request)._withUnsafeGuaranteedRef { $0.getattr(request, inode: inode) }
        }
        operations.setattr = { request, inode, attributes, fields, _ in
            guard let request else { return }
            FileSystem.of(request)._withUnsafeGuaranteedRef {
                $0.setattr(request, inode: inode, wanted: attributes, fields: fields)
            }
        }
        operations.open = { request, inode, info in
            guard let request else { return }
            guard let info else { return reply(request, EINVAL) }
            FileSystem.of(request)._withUnsafeGuaranteedRef { $0.open(request, inode: inode, info: info) }
        }
        operations.read = { request, _, size, offset, info in
            guard let request else { return }
            guard let file = OpenFile.of(info) else { return reply(request, EBADF) }
            FileSystem.of(request)._withUnsafeGuaranteedRef { fileSystem in
                file._withUnsafeGuaranteedRef { fileSystem.read(request, size: size, offset: offset, file: $0) }
            }
        }
        operations.write = { request, _, data, size, offset, info in
            guard let request else { return }
            guard let file = OpenFile.of(info) else { return reply(request, EBADF) }
            FileSystem.of(request)._withUnsafeGuaranteedRef { fileSystem in
                file._withUnsafeGuaranteedRef { fileSystem.write(request, data: data, size: size, offset: offset, file: $0) }
            }
        }
        operations.fallocate = { request, _, mode, offset, length, info in
            guard let request else { return }
            guard let file = OpenFile.of(info) else { return reply(request, EBADF) }
            FileSystem.of(request)._withUnsafeGuaranteedRef { fileSystem in
                file._withUnsafeGuaranteedRef {
                    fileSystem.fallocate(request, mode: mode, offset: offset, length: length, file: $0)
                }
            }
        }
        operations.flush = { request, _, _ in
            guard let request else { return }
            reply(request, 0)
        }
        operations.fsync = { request, _, _, info in
            guard let request else { return }
            FileSystem.of(request)._withUnsafeGuaranteedRef { $0.fsync(request, file: OpenFile.of(info)?.takeUnretainedValue()) }
        }
        operations.release = { request, _, info in
            guard let request else { return }
            FileSystem.of(request)._withUnsafeGuaranteedRef { $0.release(request, info: info) }
        }
        operations.readdir = { request, inode, size, offset, _ in
            guard let request else { return }
            FileSystem.of(request)._withUnsafeGuaranteedRef { $0.readdir(request, inode: inode, size: size, offset: offset) }
        }
        operations.statfs = { request, _ in
            guard let request else { return }
            FileSystem.of(request)._withUnsafeGuaranteedRef { $0.statfs(request) }
        }
        return operations
    }
}

/// Answers a request with an errno (0 for success without data).
@inline(__always)
func reply(_ request: fuse_req_t, _ error: Int32) {
    fuse_reply_err(request, error)
}
