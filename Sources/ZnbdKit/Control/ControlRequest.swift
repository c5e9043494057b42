import SwiftZram

/// One request on the control socket, sent as a JSON object on one line:
///
///     {"op":"status"}
///     {"op":"get","device":"zram0","attribute":"mm_stat"}
///     {"op":"set","device":"zram0","attribute":"mem_limit","value":"512M"}
///     {"op":"hot-add","algorithm":"zstd","disksize":8388608}
///     {"op":"hot-remove","device":"zram1"}
///
/// A request that lacks a field its operation needs does not decode (EINVAL).
public enum ControlRequest: Equatable, Sendable {
    /// Every device with zram's counters.
    case status
    /// `cat /sys/block/DEVICE/ATTRIBUTE`.
    case get(device: String, attribute: String)
    /// `echo VALUE > /sys/block/DEVICE/ATTRIBUTE`.
    case set(device: String, attribute: String, value: String)
    /// A new device with the lowest free number, optionally with an algorithm and then a disksize.
    case hotAdd(algorithm: CompressionAlgorithm?, diskSize: UInt64?)
    /// Withdraws a device no client has open.
    case hotRemove(device: String)

    /// The operation's name on the wire.
    public enum Operation: String, Codable, Sendable, CaseIterable {
        case status, get, set
        case hotAdd = "hot-add"
        case hotRemove = "hot-remove"
    }

    public var operation: Operation {
        switch self {
        case .status: .status
        case .get: .get
        case .set: .set
        case .hotAdd: .hotAdd
        case .hotRemove: .hotRemove
        }
    }
}

extension ControlRequest: Codable {
    private enum CodingKeys: String, CodingKey {
        case op, device, attribute, value, algorithm, disksize
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        switch try container.decode(Operation.self, forKey: .op) {
        case .status:
            self = .status
        case .get:
            self = .get(
                device: try container.decode(String.self, forKey: .device),
                attribute: try container.decode(String.self, forKey: .attribute))
        case .set:
            self = .set(
                device: try container.decode(String.self, forKey: .device),
                attribute: try container.decode(String.self, forKey: .attribute),
                value: try container.decode(String.self, forKey: .value))
        case .hotAdd:
            let algorithm = try container.decodeIfPresent(String.self, forKey: .algorithm).map { name in
                guard let algorithm = CompressionAlgorithm(rawValue: name) else {
                    throw DecodingError.dataCorruptedError(
                        forKey: .algorithm, in: container, debugDescription: "unknown algorithm '\(name)'")
                }
                return algorithm
            }
            self = .hotAdd(algorithm: algorithm, diskSize: try container.decodeIfPresent(UInt64.self, forKey: .disksize))
        case .hotRemove:
            self = .hotRemove(device: try container.decode(String.self, forKey: .device))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(operation, forKey: .op)
        switch self {
        case .status:
            break
        case .get(let device, let attribute):
            try container.encode(device, forKey: .device)
            try container.encode(attribute, forKey: .attribute)
        case .set(let device, let attribute, let value):
            try container.encode(device, forKey: .device)
            try container.encode(attribute, forKey: .attribute)
            try container.encode(value, forKey: .value)
        case .hotAdd(let algorithm, let diskSize):
            try container.encodeIfPresent(algorithm?.rawValue, forKey: .algorithm)
            try container.encodeIfPresent(diskSize, forKey: .disksize)
        case .hotRemove(let device):
            try container.encode(device, forKey: .device)
        }
    }
}
