#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import SwiftZram
import Synchronization

/// Serves the control socket: `status`, `get`, `set`, `hot-add`, `hot-remove`,
/// one JSON request per line, one JSON response per line.
///
/// Requests are bounded (64 KiB); a malformed one gets an EINVAL answer, and a
/// client silent for 30 s is dropped. Each client has its own thread.
public final class ControlServer: Sendable {
    static let requestLimit = 64 << 10

    public let path: String
    private let registry: DeviceRegistry
    private let logger: Logger
    private let listener: Int32
    private let stopped = Atomic<Bool>(false)

    public init(path: String, registry: DeviceRegistry, logger: Logger) throws {
        self.path = path
        self.registry = registry
        self.logger = logger
        listener = try UnixSocket.listen(path)
    }

    public func start() {
        let thread = Thread { [self] in acceptLoop() }
        thread.name = "znbd-control"
        thread.start()
    }

    /// Stops accepting and removes the socket file.
    public func shutdown() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        Glibc.shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        unlink(path)
    }

    private func acceptLoop() {
        while !stopped.load(ordering: .acquiring) {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                if stopped.load(ordering: .acquiring) { return }
                logger.warning("control accept failed: \(String(cString: strerror(errno)))")
                usleep(100_000)
                continue
            }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            let thread = Thread { [self] in serve(client) }
            thread.name = "znbd-control-client"
            thread.start()
        }
    }

    private func serve(_ fd: Int32) {
        defer { close(fd) }
        UnixSocket.setTimeout(fd, seconds: 30)
        while true {
            let response: ControlResponse
            do {
                guard let line = try UnixSocket.readLine(fd, limit: Self.requestLimit) else { return }
                if let request = try? JSONDecoder().decode(ControlRequest.self, from: Data(line)) {
                    response = handle(request)
                } else {
                    response = .failure("EINVAL", "malformed control request")
                }
            } catch {
                try? UnixSocket.writeAll(fd, Self.encode(.failure("EINVAL", "\(error)")))
                return
            }
            do { try UnixSocket.writeAll(fd, Self.encode(response)) } catch { return }
        }
    }

    public static func encode(_ response: ControlResponse) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array((try? encoder.encode(response)) ?? Data("{\"ok\":false}".utf8)) + [UInt8(ascii: "\n")]
    }

    func handle(_ request: ControlRequest) -> ControlResponse {
        do {
            switch request.op {
            case .status:
                var response = ControlResponse.success()
                response.status = status()
                return response
            case .get:
                let (export, attribute) = try target(request)
                return .success(try export.device.readAttribute(attribute))
            case .set:
                let (export, attribute) = try target(request)
                guard let value = request.value else { throw ZramError.invalid("set needs a value") }
                try export.device.writeAttribute(attribute, value)
                logger.info("\(export.name): \(attribute) = \(value.trimmingCharacters(in: .whitespacesAndNewlines))")
                return .success()
            case .hotAdd:
                let export = try registry.add { device throws(ZramError) in
                    if let algorithm = request.attribute { try device.writeAttribute("comp_algorithm", algorithm) }
                    if let size = request.value { try device.writeAttribute("disksize", size) }
                }
                logger.info("hot-add: \(export.name)")
                return .success(export.name)
            case .hotRemove:
                guard let name = request.device else { throw ZramError.invalid("hot-remove needs a device") }
                try registry.remove(named: name)
                logger.info("hot-remove: \(name)")
                return .success()
            }
        } catch let error as ZramError {
            return .failure(error.errnoName, error.message)
        } catch {
            return .failure("EINVAL", "\(error)")
        }
    }

    private func target(_ request: ControlRequest) throws(ZramError) -> (ZramExport, String) {
        guard let name = request.device, let export = registry.export(named: name) else {
            throw .invalid("no device named \(request.device ?? "(none)")")
        }
        guard let attribute = request.attribute else { throw .invalid("no attribute given") }
        return (export, attribute)
    }

    public func status() -> ServerStatus {
        ServerStatus(devices: registry.all.map { export in
            let device = export.device
            let mm = device.memoryStatistics, io = device.ioStatistics
            return DeviceStatus(
                name: device.name, disksize: device.diskSize, initstate: device.isInitialized ? 1 : 0,
                comp_algorithm: device.algorithm.rawValue, streams: device.streamCount,
                mm_stat: Dictionary(uniqueKeysWithValues: zip(MemoryStatistics.fieldNames, mm.fields)),
                io_stat: Dictionary(uniqueKeysWithValues: zip(IOStatistics.fieldNames, io.fields)),
                connections: device.openers)
        })
    }
}
