#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import SwiftZram

/// A temporary directory for backing files, removed by `remove()`.
struct BackingScratch {
    let path: String

    init() throws {
        var template = Array("/tmp/zram-backing.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw POSIXError(.EIO) }
        path = String(cString: made)
    }

    func file(_ name: String) -> String { "\(path)/\(name)" }
    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// Page-aligned bytes, as the device hands them to a store (O_DIRECT needs them).
final class AlignedBuffer {
    let bytes: UnsafeMutableRawBufferPointer

    init(count: Int) {
        bytes = .allocate(byteCount: count, alignment: 4096)
        bytes.initializeMemory(as: UInt8.self, repeating: 0)
    }

    /// A buffer of `pages` pages, each byte from a fixed-seed generator.
    convenience init(pages: Int, seed: UInt64) {
        self.init(count: pages * 4096)
        var random = SplitMix64(seed: seed)
        for index in 0..<bytes.count { bytes[index] = UInt8(truncatingIfNeeded: random.next()) }
    }

    deinit { bytes.deallocate() }

    var readOnly: UnsafeRawBufferPointer { UnsafeRawBufferPointer(bytes) }

    /// Writes the buffer to `store` while it is certainly alive (a temporary buffer's
    /// `bytes` alone would not keep it so).
    func write(to store: some BackingStore, at offset: UInt64) throws(ZramError) {
        try withExtendedLifetime(self) { () throws(ZramError) in try store.write(readOnly, at: offset) }
    }

    func read(from store: some BackingStore, at offset: UInt64) throws(ZramError) {
        try withExtendedLifetime(self) { () throws(ZramError) in try store.read(into: bytes, at: offset) }
    }
    func isZero() -> Bool { bytes.allSatisfy { $0 == 0 } }
    func equals(_ other: AlignedBuffer) -> Bool { bytes.elementsEqual(other.bytes) }
}

func fileStatus(_ path: String) -> stat? {
    var status = stat()
    return stat(path, &status) == 0 ? status : nil
}

/// Expects `body` to throw a `ZramError` of `kind`, and returns its message.
@discardableResult
func expectZramError(
    _ kind: ZramError.Kind, _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws(ZramError) -> Void
) -> String? {
    do {
        try body()
        Issue.record("expected \(kind), nothing was thrown. \(comment?.rawValue ?? "")", sourceLocation: sourceLocation)
    } catch {
        #expect(error.kind == kind, "\(error) \(comment?.rawValue ?? "")", sourceLocation: sourceLocation)
        return error.message
    }
    return nil
}

/// What loop-device tests need: root, loop support and losetup. On a developer's
/// machine a missing facility skips the test and says why; with `CI=true` the test
/// runs and fails with the same reason.
enum LoopFacility {
    static let inCI = ProcessInfo.processInfo.environment["CI"] == "true"

    static var missing: String? {
        if geteuid() != 0 { return "needs root for losetup" }
        if !FileManager.default.fileExists(atPath: "/dev/loop-control") { return "no loop device support" }
        if losetupPath == nil { return "losetup is not installed" }
        return nil
    }

    static var trait: ConditionTrait {
        .enabled(if: missing == nil || inCI, "\(missing ?? ""); with CI=true this is a failure")
    }

    static var losetupPath: String? {
        ["/usr/sbin/losetup", "/sbin/losetup", "/usr/bin/losetup"].first { access($0, X_OK) == 0 }
    }
}

struct LoopFailure: Error, CustomStringConvertible { var description: String }

/// A loop device over a file; `detach()` (from a `defer`) undoes it.
struct LoopDevice {
    let path: String

    init(file: String) throws {
        if let missing = LoopFacility.missing { throw LoopFailure(description: "\(missing) (CI=true: a failure, not a skip)") }
        path = try Self.losetup(["--find", "--show", file]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func detach() { _ = try? Self.losetup(["-d", path]) }

    @discardableResult
    static func losetup(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: LoopFacility.losetupPath ?? "/usr/sbin/losetup")
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw LoopFailure(description: "losetup \(arguments.joined(separator: " ")): \(text)")
        }
        return text
    }
}
