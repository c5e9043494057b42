import NBD
import SwiftZram

/// A `ZramDevice` seen through the NBD server's `BlockExport` seam.
public final class ZramExport: BlockExport {
    public let device: ZramDevice

    public init(device: ZramDevice) { self.device = device }

    public var name: String { device.name }

    public var exportDescription: String {
        device.isInitialized ? "\(HumanSize.format(device.diskSize)) \(device.algorithm)" : "uninitialised"
    }

    public var size: UInt64 { device.diskSize }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(BlockExportError) {
        try read(into: buffer, at: offset, splittable: true)
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64, splittable: Bool) throws(BlockExportError) {
        do { try device.read(into: buffer, at: offset, splittable: splittable) } catch { throw Self.wireError(error) }
    }

    public func write(_ data: UnsafeRawBufferPointer, at offset: UInt64) throws(BlockExportError) {
        try write(data, at: offset, backlogged: false)
    }

    public func write(_ data: UnsafeRawBufferPointer, at offset: UInt64, backlogged: Bool) throws(BlockExportError) {
        do { try device.write(data, at: offset, backlogged: backlogged) } catch { throw Self.wireError(error) }
    }

    public func trim(offset: UInt64, length: UInt64) throws(BlockExportError) {
        do { try device.discard(offset: offset, length: length) } catch { throw Self.wireError(error) }
    }

    public func writeZeroes(offset: UInt64, length: UInt64, mayTrim: Bool) throws(BlockExportError) {
        do { try device.writeZeroes(offset: offset, length: length, deallocate: mayTrim) } catch {
            throw Self.wireError(error)
        }
    }

    public func flush() throws(BlockExportError) {}

    public func blockStatus(offset: UInt64, length: UInt64, _ body: (UInt64, BlockStatusFlags) -> Bool) throws(BlockExportError) {
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

    public func clientAttached() { device.open() }

    public func clientDetached() { device.close() }

    /// The NBD error for a device error: mem_limit and memory exhaustion are ENOSPC
    /// (the write cannot be stored), a device without disksize is EIO.
    static func wireError(_ error: ZramError) -> BlockExportError {
        switch error.kind {
        case .memoryLimitReached, .outOfMemory, .noSpace: .noSpace(error.message)
        case .outOfRange, .invalidArgument: .invalid(error.message)
        case .notInitialized, .ioError, .busy, .noDevice, .tryAgain: .io(error.message)
        }
    }
}
