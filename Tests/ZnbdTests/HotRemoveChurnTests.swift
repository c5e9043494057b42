import Dispatch
import Foundation
import Logging
import NBD
import SwiftZram
import Synchronization
import Testing

@testable import ZnbdKit

/// Issue 10 D5: hot-remove, hot-add and reset of `zram1` while clients connect, write
/// and read over a real Unix socket. A client either gets the device that stays or is
/// refused: no acknowledged write may land in a device already removed (a second client
/// of `zram1` would never see it), and no client that was given a size may have its
/// writes fail because the device was reset under it.
@Suite struct HotRemoveChurnTests {
    /// Printed by every failure; change it to explore other interleavings.
    static let seed: UInt64 = 0xD5_C4A2_0001
    static let clients = 4
    static let iterationsPerClient = 400
    static let pagesPerIteration = 2
    static let pageSize = 4096
    static let diskSize = UInt64(clients * iterationsPerClient * pagesPerIteration * pageSize)
    /// Removals (or resets) after which the churner stops: each removed device is kept to be read.
    static let maximumChurns = 400

    /// What the churning thread does to `zram1`.
    enum Churn: String, CaseIterable, Sendable {
        /// hot-remove, then hot-add a fresh `zram1`.
        case hotRemove
        /// reset, then disksize again.
        case reset
    }

    @Test(.timeLimit(.minutes(3)), arguments: Churn.allCases)
    func churnNeverLosesAnAcknowledgedWrite(churn: Churn) throws {
        let directory = try ZnbdServer.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var logger = Logger(label: "churn")
        logger.logLevel = .critical
        let registry = DeviceRegistry()
        let configure: (ZramDevice) throws(ZramError) -> Void = { try $0.setDiskSize(Self.diskSize) }
        try registry.add(named: "zram0", configure: configure)
        try registry.add(named: "zram1", configure: configure)
        let socket = directory + "/nbd.sock"
        let server = NBDServer(configuration: .init(unixSocketPath: socket), exports: registry.exports, logger: logger)
        try server.start()
        defer { server.shutdown(grace: .seconds(1)) }

        let run = ChurnRun()
        let group = DispatchGroup()
        for client in 0..<Self.clients {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                Self.client(client, socket: socket, run: run)
            }
        }
        let churner = DispatchGroup()
        churner.enter()
        Thread.detachNewThread {
            defer { churner.leave() }
            Self.churn(churn, registry: registry, run: run)
        }
        let finished = group.wait(timeout: .now() + .seconds(150))
        run.stop.store(true, ordering: .sequentiallyConsistent)
        #expect(churner.wait(timeout: .now() + .seconds(20)) == .success, "seed \(Self.seed): the churner did not stop")
        try #require(finished == .success, "seed \(Self.seed): clients did not finish")

        let record = run.record.withLock { $0 }
        print(
            "churn \(churn) seed \(Self.seed): \(record.acked.count) acknowledged writes, \(record.refused) refused entries, "
                + "\(record.removals.count) \(churn == .reset ? "resets" : "removals"), \(record.busy) EBUSY")
        #expect(record.clientFailures.isEmpty, "seed \(Self.seed): \(record.clientFailures.prefix(5))")
        #expect(record.removals.count > 0, "seed \(Self.seed): the churner never got the device")

        // Every acknowledged write is in zram1 as it stands now (read by a second client)
        // or in a device removed after the write; one in a device removed before it is lost.
        let reader = try NBDTestClient(socket: socket, export: "zram1")
        var lost: [String] = []
        for write in record.acked {
            let now = try reader.read(at: write.offset, length: Self.pageSize)
            if now == Self.page(sequence: write.sequence, offset: write.offset) { continue }
            switch churn {
            case .hotRemove:
                let holder = record.removals.first { removal in
                    Self.page(in: removal.device, at: write.offset) == Self.page(sequence: write.sequence, offset: write.offset)
                }
                if let holder, write.sequence < holder.ticket { continue }  // removed later, with its data
                lost.append("write \(write.sequence) at \(write.offset): " + (holder.map { "in a device removed at ticket \($0.ticket)" } ?? "nowhere"))
            case .reset:
                // A later reset legitimately wiped it.
                if record.removals.contains(where: { write.sequence < $0.ticket }) { continue }
                lost.append("write \(write.sequence) at \(write.offset): gone without a reset after it")
            }
        }
        reader.disconnect()
        #expect(lost.isEmpty, "seed \(Self.seed): \(lost.count) acknowledged writes lost, e.g. \(lost.prefix(5))")
        #expect(record.writeErrors == 0, "seed \(Self.seed): \(record.writeErrors) writes failed on a device the client was given")
    }

    /// One client: connect (GO or EXPORT_NAME, as the seed says), write its next pages,
    /// record what was acknowledged, disconnect.
    static func client(_ index: Int, socket: String, run: ChurnRun) {
        var random = SplitMix64(seed: seed &+ UInt64(index))
        var iteration = 0
        var refusals = 0
        while iteration < iterationsPerClient && refusals < 100_000 {
            let entry: NBDTestClient.Entry = random.next() & 1 == 0 ? .go : .exportName
            let connection: NBDTestClient
            do {
                connection = try NBDTestClient(socket: socket, export: "zram1", entry: entry)
            } catch {
                refusals += 1
                run.record.withLock { $0.refused += 1 }
                continue
            }
            guard connection.size == diskSize else {
                // Between a reset and its disksize: an empty device, refused in effect.
                refusals += 1
                run.record.withLock { $0.refused += 1 }
                connection.disconnect()
                continue
            }
            for pageIndex in 0..<pagesPerIteration {
                let offset = UInt64(((index * iterationsPerClient + iteration) * pagesPerIteration + pageIndex) * pageSize)
                let sequence = run.sequence.add(1, ordering: .sequentiallyConsistent).newValue
                do {
                    let error = try connection.write(Self.page(sequence: sequence, offset: offset), at: offset)
                    run.record.withLock { record in
                        if error == 0 {
                            record.acked.append(AckedWrite(sequence: sequence, offset: offset))
                        } else {
                            record.writeErrors += 1
                        }
                    }
                } catch {
                    run.record.withLock { $0.clientFailures.append("client \(index) (\(entry), page \(pageIndex), size \(connection.size)): \(error)") }
                }
            }
            connection.disconnect()
            iteration += 1
        }
    }

    /// Removes and re-adds (or resets and re-sizes) zram1 as fast as it can until told
    /// to stop or `maximumChurns` are done.
    static func churn(_ churn: Churn, registry: DeviceRegistry, run: ChurnRun) {
        var random = SplitMix64(seed: seed ^ 0xC4A2)
        var lastTicket: UInt64 = 0
        while !run.stop.load(ordering: .sequentiallyConsistent)
            && run.record.withLock({ $0.removals.count }) < maximumChurns
        {
            // Spread the churns over the clients' run: one per couple of writes at most.
            if run.sequence.load(ordering: .sequentiallyConsistent) < lastTicket + 2 {
                sched_yield()
                continue
            }
            switch churn {
            case .hotRemove:
                do {
                    let removed = try registry.remove(named: "zram1")
                    // Every write numbered from here on was sent after the removal.
                    let ticket = run.sequence.load(ordering: .sequentiallyConsistent) + 1
                    lastTicket = ticket
                    run.record.withLock { $0.removals.append(Removal(device: removed.device, ticket: ticket)) }
                    Self.pause(&random)  // a gap in which clients are refused
                    try registry.add(named: "zram1") { device throws(ZramError) in try device.setDiskSize(diskSize) }
                } catch {
                    run.record.withLock { $0.busy += 1 }
                }
            case .reset:
                guard let device = registry.export(named: "zram1")?.device else { continue }
                do throws(ZramError) {
                    try device.reset()
                    let ticket = run.sequence.load(ordering: .sequentiallyConsistent) + 1
                    lastTicket = ticket
                    run.record.withLock { $0.removals.append(Removal(device: device, ticket: ticket)) }
                    Self.pause(&random)  // a gap in which clients see an empty device
                    try device.setDiskSize(diskSize)
                } catch {
                    run.record.withLock { $0.busy += 1 }
                }
            }
        }
    }

    /// Yields, or sleeps up to 100 µs, as the seed says: only widens the windows the test probes.
    static func pause(_ random: inout SplitMix64) {
        let choice = random.next() % 4
        if choice == 0 { sched_yield() } else { usleep(UInt32(choice * 30)) }
    }

    /// The page a write with `sequence` puts at `offset`.
    static func page(sequence: UInt64, offset: UInt64) -> [UInt8] {
        var bytes = [UInt8](repeating: UInt8(truncatingIfNeeded: sequence &* 31 &+ 7), count: pageSize)
        withUnsafeBytes(of: sequence.littleEndian) { bytes.replaceSubrange(0..<8, with: $0) }
        withUnsafeBytes(of: offset.littleEndian) { bytes.replaceSubrange(8..<16, with: $0) }
        return bytes
    }

    /// A page read straight from a device (one the registry no longer has).
    static func page(in device: ZramDevice, at offset: UInt64) -> [UInt8]? {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: pageSize, alignment: 8)
        defer { buffer.deallocate() }
        do throws(ZramError) { try device.read(into: buffer, at: offset) } catch { return nil }
        return Array(buffer)
    }
}

struct AckedWrite: Sendable {
    var sequence: UInt64
    var offset: UInt64
}

/// A device taken out of service (hot-removed, or reset) and the first write number sent after it.
struct Removal: Sendable {
    var device: ZramDevice
    var ticket: UInt64
}

/// What the threads of one churn run share.
final class ChurnRun: Sendable {
    struct Record {
        var acked: [AckedWrite] = []
        var removals: [Removal] = []
        var refused = 0
        var busy = 0
        var writeErrors = 0
        var clientFailures: [String] = []
    }

    let record = Mutex(Record())
    /// Write numbers, in the order writes are sent.
    let sequence = Atomic<UInt64>(0)
    let stop = Atomic<Bool>(false)
}
