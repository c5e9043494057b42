import Foundation
import Logging
import SwiftZram

/// What each control request does to the registry and its devices.
extension ControlServer {
    /// Answers one request; every failure becomes a `.failure` with its errno kind.
    public func handle(_ request: ControlRequest) -> ControlResponse {
        do throws(ControlError) {
            return try perform(request)
        } catch {
            return .failure(error)
        }
    }

    private func perform(_ request: ControlRequest) throws(ControlError) -> ControlResponse {
        switch request {
        case .status:
            return .status(status())
        case .get(let device, let attribute):
            let export = try export(named: device)
            do { return .value(try export.device.readAttribute(attribute)) } catch { throw ControlError(error) }
        case .set(let device, let attribute, let value):
            let export = try export(named: device)
            do { try export.device.writeAttribute(attribute, value) } catch { throw ControlError(error) }
            logger.info("\(export.name): \(attribute) = \(value.trimmingCharacters(in: .whitespacesAndNewlines))")
            return .done
        case .hotAdd(let algorithm, let diskSize):
            let export = try registry.add { device throws(ZramError) in
                if let algorithm { try device.setAlgorithm(algorithm) }
                if let diskSize { try device.setDiskSize(diskSize) }
            }
            logger.info("hot-add: \(export.name)")
            return .added(device: export.name)
        case .hotRemove(let device):
            try registry.remove(named: device)
            logger.info("hot-remove: \(device)")
            return .done
        }
    }

    private func export(named name: String) throws(ControlError) -> ZramExport {
        guard let export = registry.export(named: name) else { throw .noDevice(name) }
        return export
    }

    /// Every device with zram's counters by name.
    public func status() -> ServerStatus {
        ServerStatus(devices: registry.all.map { export in
            let device = export.device
            let mm = device.memoryStatistics, io = device.ioStatistics, recompressed = device.recompressionStatistics
            return DeviceStatus(
                name: device.name, disksize: device.diskSize, initstate: device.isInitialized ? 1 : 0,
                comp_algorithm: device.algorithm.rawValue, streams: device.streamCount,
                mm_stat: Dictionary(uniqueKeysWithValues: zip(MemoryStatistics.fieldNames, mm.fields)),
                io_stat: Dictionary(uniqueKeysWithValues: zip(IOStatistics.fieldNames, io.fields)),
                connections: device.openers,
                bd_stat: Dictionary(uniqueKeysWithValues: zip(BackingStatistics.fieldNames, device.backingStatistics.fields)),
                backing_dev: device.backingDevice ?? "none", idle_pages: device.idlePages,
                recompression: ["pages": recompressed.pages, "saved_bytes": recompressed.savedBytes],
                tiering: device.tieringStatus)
        })
    }
}
