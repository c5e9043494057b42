import Synchronization
import SwiftZram

/// The server's devices by name (`zram0`, `zram1`, ...), with hot-add and hot-remove.
final class DeviceRegistry: Sendable {
    private let exports = Mutex<[ZramExport]>([])

    /// Devices in name order.
    var all: [ZramExport] { exports.withLock { $0 } }

    func export(named name: String) -> ZramExport? {
        exports.withLock { list in list.first { $0.name == name } }
    }

    /// Creates `zramN` with the lowest free N, configured by `configure` before it becomes visible.
    /// - Returns: the new device's export.
    @discardableResult
    func add(configure: (ZramDevice) throws(ZramError) -> Void) throws(ZramError) -> ZramExport {
        let name = exports.withLock { list in
            var index = 0
            while list.contains(where: { $0.name == "zram\(index)" }) { index += 1 }
            return "zram\(index)"
        }
        let device = ZramDevice(name: name)
        try configure(device)
        let export = ZramExport(device: device)
        try exports.withLock { list throws(ZramError) in
            guard !list.contains(where: { $0.name == name }) else { throw .busy("\(name) was added concurrently") }
            list.append(export)
            list.sort { $0.name.localizedNumericLess(than: $1.name) }
        }
        return export
    }

    /// Removes a device that no client has open.
    /// - Throws: `EBUSY` while it is open, `EINVAL` for an unknown name.
    func remove(named name: String) throws(ZramError) -> ZramExport {
        try exports.withLock { list throws(ZramError) -> ZramExport in
            guard let index = list.firstIndex(where: { $0.name == name }) else { throw .invalid("no device named \(name)") }
            let users = list[index].device.openers
            guard users == 0 else { throw .busy("\(name) is in use by \(users) client\(users == 1 ? "" : "s")") }
            return list.remove(at: index)
        }
    }
}

extension String {
    /// `zram2` before `zram10`.
    func localizedNumericLess(than other: String) -> Bool {
        let a = self.drop { !$0.isNumber }, b = other.drop { !$0.isNumber }
        if let x = Int(a), let y = Int(b), self.prefix(count - a.count) == other.prefix(other.count - b.count) {
            return x < y
        }
        return self < other
    }
}
