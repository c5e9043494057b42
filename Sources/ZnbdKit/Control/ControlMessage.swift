/// One request on the control socket: a JSON object on one line.
public struct ControlRequest: Codable, Sendable {
    public enum Operation: String, Codable, Sendable {
        case status, get, set
        case hotAdd = "hot-add"
        case hotRemove = "hot-remove"
    }

    public var op: Operation
    public var device: String?
    public var attribute: String?
    public var value: String?

    public init(op: Operation, device: String? = nil, attribute: String? = nil, value: String? = nil) {
        self.op = op
        self.device = device
        self.attribute = attribute
        self.value = value
    }
}

/// The answer: a JSON object on one line.
public struct ControlResponse: Codable, Sendable {
    public var ok: Bool
    /// The attribute text (`get`) or the new device's name (`hot-add`).
    public var value: String?
    public var status: ServerStatus?
    /// The errno name (`EBUSY`, `EINVAL`, ...) when `ok` is false.
    public var errno: String?
    public var message: String?

    static func success(_ value: String? = nil) -> ControlResponse { ControlResponse(ok: true, value: value) }

    static func failure(_ errno: String, _ message: String) -> ControlResponse {
        ControlResponse(ok: false, errno: errno, message: message)
    }
}

/// `znbd status --json`: every device with zram's counters by name.
public struct ServerStatus: Codable, Sendable {
    public var devices: [DeviceStatus]
}

public struct DeviceStatus: Codable, Sendable {
    public var name: String
    public var disksize: UInt64
    public var initstate: Int
    public var comp_algorithm: String
    public var streams: Int
    public var mm_stat: [String: UInt64]
    public var io_stat: [String: UInt64]
    public var connections: Int
}
