import NBD
import SwiftZram

/// A `ZramDevice` seen through the NBD server's `BlockExport` seam.
final class ZramExport: BlockExport {
    let device: ZramDevice

    init(device: ZramDevice) { self.device = device }

    var name: String { device.name }

    var exportDescription: String {
        device.isInitialized ? "\(HumanSize.format(device.diskSize)) \(device.algorithm)" : "uninitialised"
    }

    var size: UInt64 { device.diskSize }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(BlockExportError) {
        do { try device.read(into: buffer, at: offset) } catch { throw Self.wireError(error) }
    }

    func write(_ data: UnsafeRawBufferPointer, at offset: UInt64) throws(BlockExportError) {
        do { try device.write(data, at: offset) } catch { throw Self.wireError(error) }
    }

    func trim(offset: UInt64, length: UInt64) throws(BlockExportError) {
        do { try device.discard(offset: offset, length: length) } catch { throw Self.wireError(error) }
    }

    func writeZeroes(offset: UInt64, length: UInt64, mayTrim: Bool) throws(BlockExportError) {
        do { try device.writeZeroes(offset: offset, length: length, deallocate: mayTrim) } catch {
            throw Self.wireError(error)
        }
    }

    func flush() throws(BlockExportError) {}

    func blockStatus(offset: UInt64, length: UInt64, _ body: (UInt64, BlockStatusFlags) -> Bool) throws(BlockExportError) {
        do {
            try device.allocationStatus(offset: offset, length: length) { runLength, allocation in
                switch allocation {
                case .unallocated: body(runLength, [.hole, .zero])
                case .zeroFilled: body(runLength, .zero)
                case .data: body(runLength, [])
                }
            }
        } catch { throw Self.wireError(error) }
    }

    func clientAttached() { device.open() }

    func clientDetached() { device.close() }

    /// The NBD error for a device error: mem_limit and memory exhaustion are ENOSPC
    /// (the write cannot be stored), a device without disksize is EIO.
    static func wireError(_ error: ZramError) -> BlockExportError {
        switch error.kind {
        case .memoryLimitReached, .outOfMemory: .noSpace(error.message)
        case .outOfRange, .invalidArgument: .invalid(error.message)
        case .notInitialized, .ioError, .busy: .io(error.message)
        }
    }
}
