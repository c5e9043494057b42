import CFuse3
import NBD

#if canImport(Glibc)
import Glibc
#endif

/// LOOKUP, GETATTR, SETATTR, READDIR, STATFS, OPEN and RELEASE.
extension FileSystem {
    func attributes(inode: fuse_ino_t, of export: (any BlockExport)?) -> stat {
        var attributes = stat()
        attributes.st_ino = __ino_t(inode)
        attributes.st_uid = 0
        attributes.st_gid = 0
        attributes.st_atim = startTime
        attributes.st_mtim = startTime
        attributes.st_ctim = startTime
        attributes.st_blksize = 4096
        if let export {
            attributes.st_mode = S_IFREG | 0o600
            attributes.st_nlink = 1
            attributes.st_size = Int(clamping: export.size)
            attributes.st_blocks = Int(clamping: export.size / 512)
        } else {
            attributes.st_mode = S_IFDIR | 0o755
            attributes.st_nlink = 2
        }
        return attributes
    }

    func lookup(_ request: fuse_req_t, parent: fuse_ino_t, name: UnsafePointer<CChar>) {
        let fileName = String(cString: name)
        guard parent == Self.rootInode, let export = export(named: fileName) else {
            fuse_reply_err(request, ENOENT)
            return
        }
        var entry = fuse_entry_param()
        entry.ino = inodes.inode(for: fileName)
        entry.attr = attributes(inode: entry.ino, of: export)
        entry.attr_timeout = Self.cacheSeconds
        entry.entry_timeout = Self.cacheSeconds
        fuse_reply_entry(request, &entry)
    }

    func getattr(_ request: fuse_req_t, inode: fuse_ino_t) {
        if inode == Self.rootInode {
            var attributes = attributes(inode: inode, of: nil)
            fuse_reply_attr(request, &attributes, Self.cacheSeconds)
            return
        }
        guard let export = export(inode: inode) else {
            fuse_reply_err(request, ENOENT)
            return
        }
        var attributes = attributes(inode: inode, of: export)
        fuse_reply_attr(request, &attributes, Self.cacheSeconds)
    }

    /// The size is the device's: truncation to any other size is refused (EPERM), as are
    /// owner and mode changes; times are accepted and ignored.
    func setattr(_ request: fuse_req_t, inode: fuse_ino_t, wanted: UnsafeMutablePointer<stat>?, fields: Int32) {
        let export = inode == Self.rootInode ? nil : export(inode: inode)
        guard inode == Self.rootInode || export != nil else {
            fuse_reply_err(request, ENOENT)
            return
        }
        var current = attributes(inode: inode, of: export)
        if fields & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID) != 0 {
            fuse_reply_err(request, EPERM)
            return
        }
        if fields & FUSE_SET_ATTR_SIZE != 0, wanted?.pointee.st_size != current.st_size {
            fuse_reply_err(request, export == nil ? EISDIR : EPERM)
            return
        }
        fuse_reply_attr(request, &current, Self.cacheSeconds)
    }

    /// ".", "..", then the exports in name order; `offset` is the index of the next entry.
    func readdir(_ request: fuse_req_t, inode: fuse_ino_t, size: Int, offset: off_t) {
        guard inode == Self.rootInode else {
            fuse_reply_err(request, ENOTDIR)
            return
        }
        let names = [".", ".."] + exports.all.map(\.name).filter { !$0.isEmpty }
        let capacity = min(size, 1 << 16)
        let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: capacity)
        defer { buffer.deallocate() }
        var used = 0
        var index = max(0, Int(offset))
        while index < names.count {
            let name = names[index]
            var attributes = stat()
            attributes.st_ino = __ino_t(index < 2 ? Self.rootInode : inodes.inode(for: name))
            attributes.st_mode = index < 2 ? S_IFDIR : S_IFREG
            let needed = fuse_add_direntry(request, buffer + used, capacity - used, name, &attributes, off_t(index + 1))
            if used + needed > capacity { break }
            used += needed
            index += 1
        }
        fuse_reply_buf(request, buffer, used)
    }

    func statfs(_ request: fuse_req_t) {
        let all = exports.all
        var info = statvfs()
        info.f_bsize = 4096
        info.f_frsize = 4096
        info.f_blocks = fsblkcnt_t(all.reduce(0) { $0 + $1.size / 4096 })
        info.f_files = fsfilcnt_t(all.count + 1)
        info.f_namemax = 255
        fuse_reply_statfs(request, &info)
    }

    /// Opens a device file in direct-I/O mode with parallel direct writes: no page cache
    /// (an uncompressed copy of every page would defeat the compression) and no inode
    /// lock serialising the writes of a loop device. Holds an attachment to the export
    /// (hot-remove refuses with EBUSY until the last release).
    func open(_ request: fuse_req_t, inode: fuse_ino_t, info: UnsafeMutablePointer<fuse_file_info>) {
        if inode == Self.rootInode {
            fuse_reply_err(request, EISDIR)
            return
        }
        // Looked up and attached in one step, so a concurrent hot-remove either sees the
        // file open (EBUSY) or removes it first (ENOENT here).
        guard let name = inodes.name(of: inode), !name.isEmpty, let attachment = exports.open(name) else {
            fuse_reply_err(request, ENOENT)
            return
        }
        let file = Unmanaged.passRetained(OpenFile(attachment))
        info.pointee.fh = UInt64(UInt(bitPattern: file.toOpaque()))
        info.pointee.direct_io = 1
        info.pointee.keep_cache = 0
        FUSEWorker.current?.pendingOpenFlags = znbd_fopen_parallel_direct_writes
        if fuse_reply_open(request, info) != 0 {
            // The opener was interrupted: no RELEASE will come for this handle.
            attachment.release()
            file.release()
        }
    }

    func release(_ request: fuse_req_t, info: UnsafeMutablePointer<fuse_file_info>?) {
        if let file = OpenFile.of(info) {
            file.takeUnretainedValue().attachment.release()
            file.release()
        }
        fuse_reply_err(request, 0)
    }
}
