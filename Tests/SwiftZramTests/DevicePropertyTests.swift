import Testing
@testable import SwiftZram

/// Random operation sequences checked against a plain byte-array model.
@Suite struct DevicePropertyTests {
    static let diskSize = 256 * pageSize

    /// A fixed seed per case, the same in every run; every failure names it.
    static func seed(_ algorithm: CompressionAlgorithm, queuePages: Int) -> UInt64 {
        let index = UInt64(CompressionAlgorithm.allCases.firstIndex(of: algorithm) ?? 0)
        return 0x5EED_0000 + index << 12 + UInt64(queuePages)
    }

    /// Every algorithm, with writes compressed inline and through the compression queue.
    @Test(arguments: CompressionAlgorithm.allCases, [0, ZramDevice.defaultQueuePages])
    func randomOperationsMatchTheModel(algorithm: CompressionAlgorithm, queuePages: Int) throws {
        let seed = Self.seed(algorithm, queuePages: queuePages)
        do {
            try randomOperations(algorithm: algorithm, queuePages: queuePages, seed: seed)
        } catch {
            Issue.record("seed \(seed): \(error)")
        }
    }

    func randomOperations(algorithm: CompressionAlgorithm, queuePages: Int, seed: UInt64) throws {
        let device = try ZramDevice.make(algorithm, diskSize: UInt64(Self.diskSize), queuePages: queuePages)
        var model = [UInt8](repeating: 0, count: Self.diskSize)
        var rng = SplitMix64(seed: seed)
        let kinds = DeviceTestPage.allCases

        for step in 0..<3000 {
            let offset = Int(rng.next() % UInt64(Self.diskSize))
            let maxLength = min(Self.diskSize - offset, 5 * pageSize)
            let length = Int(rng.next() % UInt64(maxLength + 1))
            switch rng.next() % 10 {
            case 0...4:
                // Write real-looking bytes taken from a generated page, at any alignment.
                var data = [UInt8]()
                while data.count < length { data += kinds[Int(rng.next() % UInt64(kinds.count))].bytes(using: &rng) }
                data = Array(data.prefix(length))
                try device.write(data, at: UInt64(offset))
                model.replaceSubrange(offset..<(offset + length), with: data)
            case 5...6:
                let got = try device.read(count: length, at: UInt64(offset))
                #expect(got == Array(model[offset..<(offset + length)]), "seed \(seed): read \(length) at \(offset), step \(step)")
            case 7:
                try device.discard(offset: UInt64(offset), length: UInt64(length))
                model.replaceSubrange(offset..<(offset + length), with: repeatElement(0, count: length))
            default:
                try device.writeZeroes(offset: UInt64(offset), length: UInt64(length), deallocate: rng.next() % 2 == 0)
                model.replaceSubrange(offset..<(offset + length), with: repeatElement(0, count: length))
            }
        }
        #expect(try device.read(count: Self.diskSize, at: 0) == model, "seed \(seed)")
        try checkCountersAgainstContent(device, model: model, seed: seed)

        if algorithm == .lz4 { device.compact() }
        #expect(try device.read(count: Self.diskSize, at: 0) == model, "seed \(seed), after compaction")
    }

    /// orig_data_size and same_pages follow from what the pages hold; compressed bytes fit in what is held.
    func checkCountersAgainstContent(_ device: ZramDevice, model: [UInt8], seed: UInt64) throws {
        var stored = 0
        try device.allocationStatus(offset: 0, length: UInt64(model.count)) { length, status in
            if status != .unallocated { stored += Int(length) }
            return true
        }
        let stat = device.memoryStatistics
        #expect(stat.origDataSize == UInt64(stored), "seed \(seed)")
        #expect(stat.memUsedTotal >= stat.comprDataSize - stat.hugePages * UInt64(pageSize) || stat.memUsedTotal >= stat.comprDataSize, "seed \(seed)")
        #expect(stat.samePages <= stat.origDataSize / UInt64(pageSize), "seed \(seed)")
    }

    @Test(arguments: CompressionAlgorithm.allCases)
    func concurrentWritersOnDisjointRegions(algorithm: CompressionAlgorithm) async throws {
        let writers = 4
        let region = 64 * pageSize
        let device = try ZramDevice.make(algorithm, diskSize: UInt64(writers * region), streams: 2)
        var models = [[UInt8]](repeating: [], count: writers)
        var failures: [String] = []

        await withTaskGroup(of: (Int, [UInt8], [String])?.self) { group in
            for writer in 0..<writers {
                group.addTask {
                    var rng = SplitMix64(seed: UInt64(writer) + 100)
                    var model = [UInt8](repeating: 0, count: region)
                    var errors: [String] = []
                    let base = writer * region
                    for _ in 0..<400 {
                        let offset = Int(rng.next() % UInt64(region))
                        let length = Int(rng.next() % UInt64(min(region - offset, 3 * pageSize) + 1))
                        var data = DeviceTestPage.allCases[Int(rng.next() % 7)].bytes(using: &rng)
                        while data.count < length { data += data }
                        data = Array(data.prefix(length))
                        do {
                            if rng.next() % 5 == 0 {
                                try device.discard(offset: UInt64(base + offset), length: UInt64(length))
                                model.replaceSubrange(offset..<(offset + length), with: repeatElement(0, count: length))
                            } else {
                                try device.write(data, at: UInt64(base + offset))
                                model.replaceSubrange(offset..<(offset + length), with: data)
                            }
                        } catch {
                            errors.append("writer \(writer) (seed \(UInt64(writer) + 100)): \(error)")
                        }
                    }
                    return (writer, model, errors)
                }
            }
            group.addTask {
                for _ in 0..<20 { device.compact() }
                return nil
            }
            for await result in group {
                if let (writer, model, errors) = result {
                    models[writer] = model
                    failures += errors
                }
            }
        }
        #expect(failures.isEmpty, "\(failures)")
        for writer in 0..<writers {
            #expect(try device.read(count: region, at: UInt64(writer * region)) == models[writer], "region \(writer), seed \(UInt64(writer) + 100)")
        }
        #expect(device.ioStatistics.failedWrites == 0)
    }
}
