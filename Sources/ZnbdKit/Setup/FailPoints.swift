import Foundation

/// Test hook: `ZNBD_FAIL_AFTER=STEP` (or `STEP:N`, the Nth time) makes `swapon`/`mount`
/// fail right after that step, to prove that a half-done setup is rolled back.
/// Steps: `daemon`, `hot-add`, `attach`, `mkswap`, `swapon`, `mkfs`, `mount`.
enum FailPoint {
    static let environmentVariable = "ZNBD_FAIL_AFTER"
    nonisolated(unsafe) private static var counts: [String: Int] = [:]  // one CLI thread

    public static func check(_ step: String) throws {
        guard let spec = ProcessInfo.processInfo.environment[environmentVariable], !spec.isEmpty else { return }
        let parts = spec.split(separator: ":", maxSplits: 1)
        guard parts.first.map(String.init) == step else { return }
        let wanted = parts.count == 2 ? Int(parts[1]) ?? 1 : 1
        counts[step, default: 0] += 1
        if counts[step] == wanted {
            throw Tool.Failure(description: "injected failure after \(step) (\(environmentVariable)=\(spec))")
        }
    }
}
