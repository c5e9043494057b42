import SwiftZram

extension DeviceRegistry {
    /// Creates and publishes a device with a given name (`serve --config`'s `[zram3]`).
    /// - Throws: `EBUSY` when the name is taken.
    @discardableResult
    func add(named name: String, configure: (ZramDevice) throws(ZramError) -> Void) throws(ZramError) -> ZramExport {
        guard export(named: name) == nil else { throw .busy("\(name) already exists") }
        let device = ZramDevice(name: name)
        try configure(device)
        let export = ZramExport(device: device)
        guard exports.add(export) else { throw .busy("\(name) was added concurrently; try again") }
        return export
    }
}
