import NBD
import SwiftZram

/// The server's devices (`zram0`, `zram1`, ...): their NBD exports live in the
/// server's `ExportRegistry`, which this wraps with zram's naming and EBUSY rules.
public final class DeviceRegistry: Sendable {
    public let exports: ExportRegistry
    /// Runs first on each device's compressor thread.
    private let workerStart: (@Sendable () -> Void)?

    public init(
        exports: ExportRegistry = ExportRegistry(defaultExportName: "zram0"),
        workerStart: (@Sendable () -> Void)? = nil
    ) {
        self.exports = exports
        self.workerStart = workerStart
    }

    /// Devices in name order.
    public var all: [ZramExport] {
        exports.all.compactMap { $0 as? ZramExport }.sorted { $0.name.numericallyBefore($1.name) }
    }

    public func export(named name: String) -> ZramExport? {
        name.isEmpty ? nil : exports.lookup(name) as? ZramExport
    }

    /// Creates and publishes `zramN` with the lowest free N, configured by `configure` first.
    @discardableResult
    public func add(configure: (ZramDevice) throws(ZramError) -> Void) throws(ControlError) -> ZramExport {
        var index = 0
        while exports.lookup("zram\(index)") != nil { index += 1 }
        return try add(named: "zram\(index)", configure: configure)
    }

    /// Creates and publishes a device with a given name (`serve --config`'s `[zram3]`).
    /// - Throws: `EBUSY` when the name is taken, else what `configure` threw with zram's errno.
    @discardableResult
    public func add(named name: String, configure: (ZramDevice) throws(ZramError) -> Void) throws(ControlError) -> ZramExport {
        guard export(named: name) == nil else { throw .busy("\(name) already exists") }
        let device = ZramDevice(name: name, workerStart: workerStart, backingOpener: BackingStores.opener)
        do { try configure(device) } catch { throw ControlError(error) }
        let export = ZramExport(device: device)
        guard exports.add(export) else { throw .busy("\(name) was added concurrently; try again") }
        return export
    }

    /// Withdraws a device that no client has open. The check and the removal are one
    /// step under the export registry's lock, so a client entering transmission either
    /// holds the device (and this is EBUSY) or finds no such export.
    /// - Throws: `EBUSY` while it is open, `ENODEV` for an unknown name (as zram's hot_remove).
    @discardableResult
    public func remove(named name: String) throws(ControlError) -> ZramExport {
        guard !name.isEmpty else { throw .noDevice(name) }
        switch exports.remove(named: name, ifUnused: true) {
        case .removed(let export as ZramExport):
            return export
        case .inUse(_, let users):
            throw .busy("\(name) is in use by \(users) client\(users == 1 ? "" : "s")")
        case .removed, .notFound:
            throw .noDevice(name)
        }
    }
}

extension String {
    /// `zram2` before `zram10`.
    func numericallyBefore(_ other: String) -> Bool {
        let a = reversed().prefix { $0.isNumber }, b = other.reversed().prefix { $0.isNumber }
        if let x = Int(String(a.reversed())), let y = Int(String(b.reversed())),
            dropLast(a.count) == other.dropLast(b.count)
        {
            return x < y
        }
        return self < other
    }
}
