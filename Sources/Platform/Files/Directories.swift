import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Directory creation.
public enum Directories {
    /// `mkdir -p` of the directory holding `path` (a socket, a pidfile), each new
    /// directory with mode `permissions` (masked by the umask).
    public static func createParents(of path: String, permissions: mode_t = 0o755) throws(Errno) {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return }
        try create(String(path[..<slash]), permissions: permissions)
    }

    /// `mkdir -p` of `path` itself; an existing directory is left as it is.
    public static func create(_ path: String, permissions: mode_t = 0o755) throws(Errno) {
        var prefix = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            prefix += "/" + part
            if mkdir(prefix, permissions) != 0 {
                let error = Errno.lastError
                guard error == .fileExists else { throw error }
            }
        }
    }

    /// `path` with repeated slashes, `.` components and a trailing slash removed: one
    /// spelling per directory for comparisons (`..` and symlinks are left alone).
    public static func lexicallyNormalised(_ path: String) -> String {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }
        let joined = parts.joined(separator: "/")
        if path.hasPrefix("/") { return "/" + joined }
        return joined.isEmpty ? "." : joined
    }

    /// Whether `a` and `b` name the same directory: the same after
    /// ``lexicallyNormalised(_:)``, or both existing with the same device and inode
    /// (which sees through `..` and symlinks).
    public static func same(_ a: String, _ b: String) -> Bool {
        if lexicallyNormalised(a) == lexicallyNormalised(b) { return true }
        var first = stat(), second = stat()
        guard stat(a, &first) == 0, stat(b, &second) == 0 else { return false }
        return first.st_dev == second.st_dev && first.st_ino == second.st_ino
    }
}
