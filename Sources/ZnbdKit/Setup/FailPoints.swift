/// Test hook: fail `swapon`/`mount` right after one step, to prove that a half-done
/// setup is rolled back. The command layer builds it from `ZNBD_FAIL_AFTER=STEP`
/// (or `STEP:N`, the Nth time the step finishes) and hands it to `DeviceSetup`.
public struct FailPoints: Sendable {
    public static let environmentVariable = "ZNBD_FAIL_AFTER"

    /// The steps a setup can fail after.
    public enum Step: String, Sendable, CaseIterable {
        case daemon
        case hotAdd = "hot-add"
        case attach, mkswap, swapon, mkfs, mount
    }

    /// The step to fail after, and on which of its completions (1-based).
    private let target: (step: Step, occurrence: Int)?
    private let specification: String
    private var completions: [Step: Int] = [:]

    /// No injected failures.
    public init() {
        self.init(target: nil, specification: "")
    }

    private init(target: (step: Step, occurrence: Int)?, specification: String) {
        self.target = target
        self.specification = specification
    }

    /// Parses `STEP` or `STEP:N`; nil or empty means none.
    /// - Throws: `Tool.Failure` for an unknown step or a bad count, so a typo cannot disable a test.
    public init(specification: String?) throws {
        guard let specification, !specification.isEmpty else {
            self.init()
            return
        }
        let parts = specification.split(separator: ":", maxSplits: 1).map(String.init)
        guard let step = parts.first.flatMap(Step.init(rawValue:)) else {
            throw Tool.Failure(description: "\(Self.environmentVariable)=\(specification): unknown step; steps: \(Step.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let occurrence = parts.count == 2 ? Int(parts[1]) : 1
        guard let occurrence, occurrence > 0 else {
            throw Tool.Failure(description: "\(Self.environmentVariable)=\(specification): the count must be a positive number")
        }
        self.init(target: (step, occurrence), specification: specification)
    }

    /// Records that `step` finished; throws when this is the completion to fail after.
    public mutating func check(_ step: Step) throws {
        guard let target, target.step == step else { return }
        completions[step, default: 0] += 1
        if completions[step] == target.occurrence {
            throw Tool.Failure(description: "injected failure after \(step.rawValue) (\(Self.environmentVariable)=\(specification))")
        }
    }
}
