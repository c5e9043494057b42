import ArgumentParser
import SwiftZram
import ZnbdKit

/// A byte count given as `memparse` accepts it: `4096`, `512K`, `4G`.
struct SizeArgument: ExpressibleByArgument, Sendable, CustomStringConvertible {
    var bytes: UInt64

    init(bytes: UInt64) { self.bytes = bytes }

    init?(argument: String) {
        guard let bytes = memparse(argument) else { return nil }
        self.bytes = bytes
    }

    var description: String { HumanSize.format(bytes) }
}

extension CompressionAlgorithm: ExpressibleByArgument {
    public init?(argument: String) { self.init(rawValue: argument) }
    public static var allValueStrings: [String] { allCases.map(\.rawValue) }
}
