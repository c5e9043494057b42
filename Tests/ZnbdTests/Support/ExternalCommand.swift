import Foundation
import Testing

@testable import ZnbdKit

/// Tests run tools the way znbd itself does (`Tool`: PATH plus sbin, bounded in time).
typealias CommandResult = Tool.Output

extension Tool.Output: CustomStringConvertible {
    public var description: String {
        "exit \(status)\(timedOut ? " (timed out)" : "")\nstdout: \(stdout.suffix(2000))\nstderr: \(stderr.suffix(2000))"
    }
}

enum ExternalCommand {
    static func which(_ tool: String) -> String? { Tool.path(of: tool) }

    /// Runs `tool` to completion, killing it after `timeout` seconds.
    /// - Throws: `ToolMissing` when the tool is not installed (CI installs them all).
    static func run(_ tool: String, _ arguments: [String], timeout: Double = 120) throws -> CommandResult {
        guard which(tool) != nil else { throw ToolMissing(tool: tool) }
        return try Tool.run(tool, arguments, timeout: timeout)
    }

    /// Runs and requires success, recording the output as the failure's context.
    @discardableResult
    static func require(
        _ tool: String, _ arguments: [String], timeout: Double = 120, sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> CommandResult {
        let result = try run(tool, arguments, timeout: timeout)
        guard result.succeeded else {
            Issue.record("\(tool) \(arguments.joined(separator: " ")) failed: \(result)", sourceLocation: sourceLocation)
            throw CommandFailed(result: result)
        }
        return result
    }
}

/// A tool the tests need is not installed; run scripts/install-deps.sh.
struct ToolMissing: Error, CustomStringConvertible {
    var tool: String
    var description: String { "\(tool) is not installed; run scripts/install-deps.sh" }
}

struct CommandFailed: Error, CustomStringConvertible {
    var result: CommandResult
    var description: String { result.description }
}
