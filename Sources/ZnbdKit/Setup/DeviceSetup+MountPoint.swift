import Foundation

extension DeviceSetup {
    /// Refuses a mount point that holds files: the mount would hide them without a word.
    /// A missing directory (`znbd mount` creates it) or `force` passes.
    public static func checkMountPointIsEmpty(_ path: String, force: Bool) throws {
        guard !force, let entries = try? FileManager.default.contentsOfDirectory(atPath: path), let first = entries.min() else {
            return
        }
        let count = entries.count == 1 ? "1 entry" : "\(entries.count) entries"
        throw Tool.Failure(
            description: "\(path) is not empty (\(count), such as \(first)): mounting over it would hide them; use --force to mount anyway")
    }
}
