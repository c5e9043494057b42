import Foundation
import Testing

/// What a suite needs from the machine (root, FUSE, loop devices, a tool). On a
/// developer's machine a missing facility skips the suite and says why; in CI
/// (`CI=true`) the suite runs anyway and fails with the same reason, so a CI
/// machine that lost a facility cannot pass by skipping.
enum Facility {
    static let inCI = ProcessInfo.processInfo.environment["CI"] == "true"

    /// The trait for a suite or test that needs what `missing` describes (nil: all there).
    static func required(_ missing: String?) -> ConditionTrait {
        .enabled(if: missing == nil || inCI, "\(missing ?? ""); with CI=true this is a failure")
    }

    /// Throws (failing the test) when something is missing; the first line of a test or a suite's init.
    static func require(_ missing: String?) throws {
        if let missing { throw FacilityMissing(reason: missing) }
    }

    /// Root, /dev/fuse and loop devices: what nbdfuse + losetup + mkswap/mount need.
    static var kernel: String? { KernelAttachment.unavailableReason }
}

struct FacilityMissing: Error, CustomStringConvertible {
    var reason: String
    var description: String { "\(reason) (CI=true: a missing facility is a failure, not a skip)" }
}
