import Testing
@testable import SwiftZram

/// backing_dev, writeback's command forms and errors, the limit and batch
/// attributes, against the kernel's documented behaviour (zram.rst, Linux 6.16+).
@Suite struct WritebackAttributeTests {
    @Test func backingDevReadsNoneUntilSetAndIsBusyAfterDisksize() throws {
        let store = TestBackingStore(name: "/dev/test0")
        let device = ZramDevice(name: "zram-wb", streams: 1, backingOpener: { _ in store })
        #expect(try device.readAttribute("backing_dev") == "none\n")
        try device.writeAttribute("backing_dev", "/dev/test0\n")
        #expect(try device.readAttribute("backing_dev") == "/dev/test0\n")
        try device.writeAttribute("disksize", "1M")
        #expect(store.capacity == 1 << 20, "the store is prepared to disksize")
        #expect(throwsKind(.busy) { try device.writeAttribute("backing_dev", "/dev/test0") })
        #expect(try device.readAttribute("backing_dev") == "/dev/test0\n")
    }

    @Test func resetClosesTheBackingDeviceAsTheKernelsResetBdev() throws {
        let store = TestBackingStore()
        let device = try ZramDevice.makeBacked(by: store)
        try device.writeAttribute("writeback_limit_enable", "1")
        try device.writeAttribute("writeback_limit", "7")
        try device.writeAttribute("writeback_batch_size", "5")
        try device.writeAttribute("reset", "1")
        #expect(store.isClosed)
        #expect(try device.readAttribute("backing_dev") == "none\n")
        #expect(try device.readAttribute("bd_stat") == "       0        0        0\n")
        // The kernel keeps wb_limit_enable and bd_wb_limit across reset.
        #expect(try device.readAttribute("writeback_limit_enable") == "1\n")
        #expect(try device.readAttribute("writeback_limit") == "7\n")
        #expect(try device.readAttribute("writeback_batch_size") == "5\n")
    }

    @Test func aFailedOpenKeepsTheOldBackingDevice() throws {
        let store = TestBackingStore(name: "good")
        let device = ZramDevice(name: "zram-wb", streams: 1, backingOpener: { name throws(ZramError) in
            guard name == "good" else { throw ZramError(.invalidArgument, "no such store") }
            return store
        })
        try device.writeAttribute("backing_dev", "good")
        #expect(throws: ZramError.self) { try device.writeAttribute("backing_dev", "bad") }
        #expect(try device.readAttribute("backing_dev") == "good\n")
        #expect(!store.isClosed)
        #expect(throws: ZramError.self) { try device.writeAttribute("backing_dev", "") }
    }

    @Test func writebackErrorsInTheKernelsOrder() throws {
        let plain = ZramDevice(name: "zram-plain", streams: 1)
        // Before disksize: EINVAL (6.16's writeback_store).
        #expect(throwsKind(.invalidArgument) { try plain.writeAttribute("writeback", "idle") })
        try plain.setDiskSize(1 << 20)
        #expect(throwsKind(.noDevice) { try plain.writeAttribute("writeback", "idle") })
        #expect(throwsKind(.noDevice) { try plain.writeAttribute("writeback", "nonsense") }, "ENODEV comes before parsing")

        let device = try ZramDevice.makeBacked(by: TestBackingStore(), diskSize: 1 << 20)
        for bad in ["", "sleepy", "type=cold", "page_index=", "page_index=-1", "page_index=x", "page_index=256",
                    "page_indexes=3", "page_indexes=5-2", "page_indexes=0-256", "pages=1"] {
            #expect(throwsKind(bad == "page_index=256" || bad.hasSuffix("5-2") || bad.hasSuffix("0-256") ? .outOfRange : .invalidArgument) {
                try device.writeAttribute("writeback", bad)
            }, "'\(bad)'")
        }
        // EAGAIN while another post-processing run holds the device.
        device.postProcessing.store(true, ordering: .relaxed)  // as a running recompression holds it
        #expect(throwsKind(.tryAgain) { try device.writeAttribute("writeback", "idle") })
        device.postProcessing.store(false, ordering: .relaxed)
        try device.writeAttribute("writeback", "idle")
        #expect(throws: ZramError.self) { _ = try device.readAttribute("writeback") }
        #expect(throws: ZramError.self) { try device.writeAttribute("bd_stat", "0") }
    }

    @Test func limitAndBatchAttributesParseAsTheKernels() throws {
        let device = ZramDevice(name: "zram-wb", streams: 1)
        #expect(try device.readAttribute("writeback_limit_enable") == "0\n")
        #expect(try device.readAttribute("writeback_limit") == "0\n")
        #expect(try device.readAttribute("writeback_batch_size") == "32\n")
        try device.writeAttribute("writeback_limit_enable", "5")  // kstrtoull, stored as a bool
        #expect(try device.readAttribute("writeback_limit_enable") == "1\n")
        try device.writeAttribute("writeback_limit_enable", "0")
        #expect(try device.readAttribute("writeback_limit_enable") == "0\n")
        try device.writeAttribute("writeback_limit", "18446744073709551615")
        #expect(try device.readAttribute("writeback_limit") == "18446744073709551615\n")
        for bad in ["-1", "x", "1.5", ""] {
            #expect(throwsKind(.invalidArgument) { try device.writeAttribute("writeback_limit", bad) }, "'\(bad)'")
            #expect(throwsKind(.invalidArgument) { try device.writeAttribute("writeback_limit_enable", bad) }, "'\(bad)'")
        }
        for bad in ["0", "-3", "4294967296", "many"] {
            #expect(throwsKind(.invalidArgument) { try device.writeAttribute("writeback_batch_size", bad) }, "'\(bad)'")
        }
        try device.writeAttribute("writeback_batch_size", "4294967295")
        #expect(try device.readAttribute("writeback_batch_size") == "4294967295\n")
        #expect(ZramDevice.readableAttributes.contains("backing_dev"))
        #expect(ZramDevice.writableAttributes.contains("writeback"))
    }

    @Test func commandFormsPickTheKernelsPages() throws {
        let pageCount = 64
        func scans(_ command: String) throws -> [ZramDevice.WritebackScan] {
            try ZramDevice.parseWriteback(command, pageCount: pageCount)
        }
        #expect(try scans("idle") == [.init(filter: .idle, pages: 0..<64)])
        #expect(try scans("huge_idle") == [.init(filter: [.idle, .huge], pages: 0..<64)])
        #expect(try scans("type=incompressible") == [.init(filter: .incompressible, pages: 0..<64)])
        #expect(try scans("page_index=9") == [.init(filter: .any, pages: 9..<10)])
        #expect(try scans("page_index=1 page_index=5 page_indexes=10-12")
            == [.init(filter: .any, pages: 1..<2), .init(filter: .any, pages: 5..<6), .init(filter: .any, pages: 10..<13)])
        // A mode ends the command and scans the last range given (the kernel's break).
        #expect(try scans("page_indexes=4-7 type=huge page_index=1")
            == [.init(filter: .any, pages: 4..<8), .init(filter: .huge, pages: 4..<8)])
    }
}

/// Whether `body` throws a `ZramError` of `kind`.
func throwsKind(_ kind: ZramError.Kind, _ body: () throws -> Void) -> Bool {
    do {
        try body()
        return false
    } catch let error as ZramError {
        return error.kind == kind
    } catch {
        return false
    }
}
