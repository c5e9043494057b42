/// One request on the control socket: a JSON object on one line.
struct ControlRequest: Codable, Sendable {
    enum Operation: String, Codable, Sendable {
        case status, get, set
        case hotAdd = "hot-add"
        case hotRemove = "hot-remove"
    }

    var op: Operation
    var device: String?
    var attribute: String?
    var value: String?
}

/// The answer: a JSON object on one line.
struct ControlResponse: Codable, Sendable {
    var ok: Bool
    /// The attribute text (`get`) or the new device's name (`hot-add`).
    var value: String?
    var status: ServerStatus?
    /// The errno name (`EBUSY`, `EINVAL`, ...) when `ok` is false.
    var errno: String?
    var message: String?

    static func success(_ value: String? = nil) -> ControlResponse { ControlResponse(ok: true, value: value) }

    static func failure(_ errno: String, _ message: String) -> ControlResponse {
        ControlResponse(ok: false, errno: errno, message: message)
    }
}

/// `znbd status --json`: every device with zram's counters by name.
struct ServerStatus: Codable, Sendable {
    var devices: [DeviceStatus]
}

struct DeviceStatus: Codable, Sendable {
    var name: String
    var disksize: UInt64
    var initstate: Int
    var comp_algorithm: String
    var streams: Int
    var mm_stat: [String: UInt64]
    var io_stat: [String: UInt64]
    var connections: Int
}
