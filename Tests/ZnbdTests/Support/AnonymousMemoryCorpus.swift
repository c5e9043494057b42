import Foundation
import Testing

/// The capture of real anonymous memory (`ZRAM_CORPUS`, default /tmp/znbd-anon.bin),
/// made by scripts/capture-anon-corpus.sh the first time a test asks for it. The script
/// serialises concurrent captures and renames the file into place once complete.
enum AnonymousMemoryCorpus {
    static let path = ProcessInfo.processInfo.environment["ZRAM_CORPUS"] ?? "/tmp/znbd-anon.bin"

    /// `count` bytes from `offset` of the corpus, capturing it first if it is missing.
    static func bytes(at offset: UInt64, count: Int) throws -> Data {
        try captured.get()
        let handle = try #require(FileHandle(forReadingAtPath: path), "no corpus at \(path)")
        defer { try? handle.close() }
        try handle.seek(toOffset: offset)
        let data = try #require(try handle.read(upToCount: count))
        try #require(data.count == count, "the corpus \(path) ends before \(offset + UInt64(count))")
        return data
    }

    /// Once per test process.
    private static let captured = Result<Void, any Error> {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("scripts/capture-anon-corpus.sh")
        try ExternalCommand.require("bash", [script.path, "--if-missing", path], timeout: 300)
    }
}
