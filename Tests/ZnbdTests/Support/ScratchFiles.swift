import Testing

/// Files written onto a mounted test file system and checked back after the page
/// cache is dropped, so the reads come from the device: eight 8 MiB text files
/// (compressible) and eight 4 MiB noise files (not), with their sums in `../sums`.
enum ScratchFiles {
    static func writeAndVerify(in directory: String, label: String) throws {
        try ExternalCommand.require("bash", ["-c", """
            set -e
            cd \(directory)
            for i in $(seq 8); do
              (yes "scratch file $i of znbd's \(label) test"; ) | head -c 8M > text$i
              head -c 4M /dev/urandom > noise$i
            done
            sha256sum text* noise* > ../sums
            sync
            """], timeout: 120)
        try ExternalCommand.require("bash", ["-c", "echo 3 > /proc/sys/vm/drop_caches"])
        try verify(in: directory)
    }

    /// Checks the files still there against `../sums` (deleted ones are skipped).
    static func verify(in directory: String, allowingMissing: Bool = false) throws {
        let missing = allowingMissing ? " --ignore-missing" : ""
        try ExternalCommand.require("bash", ["-c", "cd \(directory) && sha256sum -c --quiet\(missing) ../sums"], timeout: 120)
    }
}
