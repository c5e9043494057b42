import ArgumentParser
import SwiftZram

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

/// Sizes for people, as zramctl prints them: `4G`, `1.5M`, `812K`, `0B`.
enum HumanSize {
    static func format(_ bytes: UInt64) -> String {
        let units = ["B", "K", "M", "G", "T", "P", "E"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        if unit == 0 { return "\(bytes)B" }
        let rounded = (value * 10).rounded() / 10
        return rounded == rounded.rounded() ? "\(Int(rounded))\(units[unit])" : "\(rounded)\(units[unit])"
    }
}
