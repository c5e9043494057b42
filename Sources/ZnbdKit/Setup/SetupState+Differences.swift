import SwiftZram

extension SetupState {
    /// How the swap areas set up differ from `specs` (what `znbd swapon` is asked now):
    /// one line per difference, empty when they match. Fields an older state file did
    /// not record are not compared.
    public func swapDifferences(from specs: [DeviceSpec]) -> [String] {
        guard swaps.count == specs.count else {
            return ["devices: \(swaps.count) set up, \(specs.count) asked"]
        }
        var differences: [String] = []
        for (use, spec) in zip(swaps, specs) {
            let prefix = swaps.count > 1 ? "\(use.device ?? "?") " : ""
            func compare<T: Equatable>(_ field: String, _ recorded: T?, _ asked: T, _ show: (T) -> String) {
                if let recorded, recorded != asked {
                    differences.append("\(prefix)\(field): \(show(recorded)) set up, \(show(asked)) asked")
                }
            }
            compare("size", use.size, spec.size, HumanSize.format)
            compare("priority", use.priority, spec.swapPriority) { String($0) }
            guard use.size != nil else { continue }  // the rest is recorded with the size
            compare("algorithm", .some(use.algorithm), spec.algorithm?.rawValue) { $0 ?? "the server's default" }
            compare("mem-limit", .some(use.memLimit), spec.memLimit) { $0.map(HumanSize.format) ?? "none" }
            compare("options", .some(use.options), spec.options) { $0 ?? "none" }
            compare("writeback-device", .some(use.writebackDevice), spec.writebackDevice) { $0 ?? "none" }
            compare("tiering", use.tiering, spec.tiering) { $0 ? "on" : "off" }
            guard use.tiering != nil else { continue }
            compare("tiering-high-watermark", .some(use.tieringHighWatermark), spec.tieringHighWatermark) {
                $0.map(HumanSize.format) ?? "the default"
            }
        }
        return differences
    }
}
