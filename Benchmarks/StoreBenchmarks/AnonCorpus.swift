import Foundation

/// Real anonymous memory, page by page: the file named by `ZRAM_CORPUS`
/// (default `/tmp/znbd-anon.bin`), captured by `scripts/capture-anon-corpus.sh` if missing.
///
/// `@unchecked Sendable`: the pages are written once in `init` and only read afterwards.
final class AnonCorpus: @unchecked Sendable {
    static let pageSize = 4096
    static let path = ProcessInfo.processInfo.environment["ZRAM_CORPUS"] ?? "/tmp/znbd-anon.bin"

    /// Loaded on first use, shared by every benchmark.
    static let shared: AnonCorpus = {
        do { return try AnonCorpus(path: path) } catch { fatalError("cannot load corpus \(path): \(error)") }
    }()

    let pages: UnsafeMutableRawBufferPointer
    let pageCount: Int
    /// Indices of the pages that are not same-filled: what zram would compress.
    let compressiblePages: [Int]

    init(path: String) throws {
        if !FileManager.default.fileExists(atPath: path) { try Self.capture(to: path) }
        let data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        let count = data.count / Self.pageSize
        guard count > 0 else { throw CocoaError(.fileReadCorruptFile) }
        let pages = UnsafeMutableRawBufferPointer.allocate(byteCount: count * Self.pageSize, alignment: Self.pageSize)
        data.withUnsafeBytes { pages.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[..<pages.count])) }
        let indices = (0..<count).filter { index in
            !Self.isSameFilled(UnsafeRawBufferPointer(rebasing: pages[(index * Self.pageSize)..<((index + 1) * Self.pageSize)]))
        }
        self.pages = pages
        self.pageCount = count
        self.compressiblePages = indices
        FileHandle.standardError.write(
            "corpus \(path): \(count) pages, \(count - indices.count) same-filled (skipped)\n"
                .data(using: .utf8)!)
    }

    /// Page `index` of the corpus.
    @inline(__always)
    func page(_ index: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: pages[(index * Self.pageSize)..<((index + 1) * Self.pageSize)])
    }

    /// zram's test: every 8-byte word equals the first.
    static func isSameFilled(_ page: UnsafeRawBufferPointer) -> Bool {
        let words = page.assumingMemoryBound(to: UInt64.self)
        let first = words[0]
        return words.allSatisfy { $0 == first }
    }

    /// Runs scripts/capture-anon-corpus.sh, found from this file's place in the repository.
    private static func capture(to path: String) throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let script = root.appendingPathComponent("scripts/capture-anon-corpus.sh")
        FileHandle.standardError.write("no corpus at \(path); capturing one with \(script.path)\n".data(using: .utf8)!)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [script.path, path]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw CocoaError(.fileNoSuchFile) }
    }
}
