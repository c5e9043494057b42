#if canImport(Glibc)
import Glibc
#endif

/// Host memory pressure, as Linux's PSI reports it (`/proc/pressure/memory`).
public protocol MemoryPressureReader: Sendable {
    /// `some avg10`: the percent of the last 10 seconds in which at least one task
    /// stalled on memory; nil when the host does not report it.
    func someAverage10() -> Double?
}

/// Reads `/proc/pressure/memory` (Linux 4.20+ with CONFIG_PSI; absent otherwise,
/// or with `psi=0`: then there is no pressure to react to).
struct ProcMemoryPressure: MemoryPressureReader {
    var path = "/proc/pressure/memory"

    func someAverage10() -> Double? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var bytes = [UInt8](repeating: 0, count: 256)
        let count = bytes.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        return Self.someAverage10(in: String(decoding: bytes[..<count], as: UTF8.self))
    }

    /// The `avg10=` value of the `some` line of a PSI file:
    /// `some avg10=1.23 avg60=0.50 avg300=0.10 total=12345`.
    static func someAverage10(in text: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix("some ") {
            for field in line.split(separator: " ") where field.hasPrefix("avg10=") {
                return Double(field.dropFirst("avg10=".count))
            }
        }
        return nil
    }
}
