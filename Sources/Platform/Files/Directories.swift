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
}
