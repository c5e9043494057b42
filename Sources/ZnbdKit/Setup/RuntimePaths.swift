import Foundation
import Platform

/// Where a znbd instance keeps its sockets, pidfile, log, setup state and
/// nbdfuse mount directories: `/run/znbd` unless `--runtime-dir` or the
/// `ZNBD_RUNTIME_DIR` environment variable says otherwise (the tests use
/// temporary directories so that they never touch `/run/znbd`).
public struct RuntimePaths: Sendable {
    static let environmentVariable = "ZNBD_RUNTIME_DIR"
    static let systemDirectory = "/run/znbd"

    public let directory: String

    /// `directory` is kept absolute (from the working directory) and in one spelling
    /// (no `//`, `/./` or trailing slash): its paths are compared with the absolute ones
    /// the kernel reports (a loop device's backing file) and with a socket's directory.
    public init(directory: String) {
        let absolute = directory.hasPrefix("/") ? directory : FileManager.default.currentDirectoryPath + "/" + directory
        self.directory = Directories.lexicallyNormalised(absolute)
    }

    /// `ZNBD_RUNTIME_DIR` when set and non-empty, else `/run/znbd`.
    public static var fromEnvironment: RuntimePaths {
        let value = ProcessInfo.processInfo.environment[environmentVariable] ?? ""
        return RuntimePaths(directory: value.isEmpty ? systemDirectory : value)
    }

    public var nbdSocket: String { directory + "/nbd.sock" }
    public var controlSocket: String { directory + "/control.sock" }
    var pidFile: String { directory + "/znbd.pid" }
    var logFile: String { directory + "/znbd.log" }
    public var stateFile: String { directory + "/state.json" }
    /// Where `znbd serve` mounts its own FUSE export (one file per device).
    public var fuseExportDirectory: String { directory + "/fuse" }
    var nbdfuseDirectory: String { directory + "/nbdfuse" }

    /// nbdfuse's mount point for an export; the file inside is `nbd`, so a loop
    /// device's backing file names the export (see `AttachedDevices`).
    func fuseMountPoint(export: String) -> String { nbdfuseDirectory + "/" + export }

    /// The runtime directory that holds a control socket (for `znbd status --control PATH`).
    public static func containing(controlSocket path: String) -> RuntimePaths {
        RuntimePaths(directory: (path as NSString).deletingLastPathComponent)
    }
}
