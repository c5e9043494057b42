import Foundation
import NBDBacking
import SwiftZram
import Testing

@testable import ZnbdKit

/// `BackingStores.opener`: NBD URIs to libnbd, everything else to a file or block device.
@Suite struct BackingStoreRoutingTests {
    func openError(_ name: String) -> ZramError? {
        do {
            let store = try BackingStores.opener(name)
            store.close()
            return nil
        } catch {
            return error
        }
    }

    @Test func aPathOpensAFileStore() throws {
        let directory = try ZnbdServer.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try BackingStores.opener(directory + "/backing")
        defer { store.close() }
        #expect(store is FileBackingStore)
        #expect(store.name == directory + "/backing")
    }

    /// A file store would call these relative paths EINVAL; libnbd's connect (nbd_aio_connect_uri) fails instead.
    @Test(arguments: ["nbd+unix:///?socket=/nonexistent/nbd.sock", "nbds+unix:///?socket=/nonexistent/nbd.sock"])
    func anNBDURIGoesToLibnbd(uri: String) {
        let error = openError(uri)
        #expect(error?.kind == .ioError, "\(String(describing: error))")
        #expect(error?.message.contains("nbd_aio_connect_uri") == true, "\(String(describing: error))")
    }

    @Test(arguments: ["nbd+vsock:///", "nbdx://host/export"])
    func anNBDSchemeZnbdDoesNotUseIsInvalid(uri: String) {
        let error = openError(uri)
        #expect(error?.kind == .invalidArgument, "\(String(describing: error))")
        #expect(!FileManager.default.fileExists(atPath: uri))
    }
}
