/// The answer to one request, sent as a JSON object on one line:
///
///     {"ok":true}
///     {"ok":true,"value":"16777216\n"}
///     {"ok":true,"device":"zram1"}
///     {"ok":true,"status":{"devices":[...]}}
///     {"ok":false,"errno":"EBUSY","message":"zram0 is in use by 1 client"}
public enum ControlResponse: Equatable, Sendable {
    /// A `set` or `hot-remove` that succeeded.
    case done
    /// The attribute text a `get` read (with the kernel's newline).
    case value(String)
    /// The name of the device a `hot-add` created.
    case added(device: String)
    /// The answer to `status`.
    case status(ServerStatus)
    /// The request failed with this errno kind.
    case failure(ControlError)
}

extension ControlResponse: Codable {
    private enum CodingKeys: String, CodingKey {
        case ok, value, device, status, errno, message
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        guard try container.decode(Bool.self, forKey: .ok) else {
            self = .failure(ControlError(
                try container.decode(ControlError.Kind.self, forKey: .errno),
                try container.decode(String.self, forKey: .message)))
            return
        }
        if let value = try container.decodeIfPresent(String.self, forKey: .value) {
            self = .value(value)
        } else if let device = try container.decodeIfPresent(String.self, forKey: .device) {
            self = .added(device: device)
        } else if let status = try container.decodeIfPresent(ServerStatus.self, forKey: .status) {
            self = .status(status)
        } else {
            self = .done
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        if case .failure(let error) = self {
            try container.encode(false, forKey: .ok)
            try container.encode(error.kind, forKey: .errno)
            try container.encode(error.message, forKey: .message)
            return
        }
        try container.encode(true, forKey: .ok)
        switch self {
        case .done, .failure: break
        case .value(let value): try container.encode(value, forKey: .value)
        case .added(let device): try container.encode(device, forKey: .device)
        case .status(let status): try container.encode(status, forKey: .status)
        }
    }
}
