#if canImport(Glibc)
import Glibc
#endif
import Testing
import NBD

/// The NBD error values are the Linux errno numbers the protocol names.
@Suite struct BlockExportErrorTests {
    @Test func wireCodesMatchLinuxErrno() {
        #expect(BlockExportError.notPermitted("").code == UInt32(EPERM))
        #expect(BlockExportError.io("").code == UInt32(EIO))
        #expect(BlockExportError.outOfMemory("").code == UInt32(ENOMEM))
        #expect(BlockExportError.invalid("").code == UInt32(EINVAL))
        #expect(BlockExportError.noSpace("").code == UInt32(ENOSPC))
        #expect(BlockExportError.overflow("").code == UInt32(EOVERFLOW))
        #expect(BlockExportError.notSupported("").code == UInt32(ENOTSUP))
        #expect(BlockExportError.shutdown("").code == UInt32(ESHUTDOWN))
    }
}
