import CFuse3
import Synchronization

/// Inode numbers for file names: each name gets the next number the first time it is
/// seen and keeps it, so a device removed and added again has the same inode. Names are
/// few (one per device), so the table never shrinks.
final class InodeTable: Sendable {
    private struct State {
        var byName: [String: fuse_ino_t] = [:]
        var names: [String] = []
    }

    private let state = Mutex(State())
    /// Inode 1 is the root directory.
    static let firstFileInode: fuse_ino_t = 2

    func inode(for name: String) -> fuse_ino_t {
        state.withLock { state in
            if let inode = state.byName[name] { return inode }
            let inode = Self.firstFileInode + fuse_ino_t(state.names.count)
            state.byName[name] = inode
            state.names.append(name)
            return inode
        }
    }

    func name(of inode: fuse_ino_t) -> String? {
        guard inode >= Self.firstFileInode else { return nil }
        return state.withLock { state in
            let index = Int(inode - Self.firstFileInode)
            return index < state.names.count ? state.names[index] : nil
        }
    }
}
