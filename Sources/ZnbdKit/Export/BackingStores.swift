import NBDBacking
import SwiftZram

/// What znbd's devices open for `backing_dev`.
public enum BackingStores {
    /// NBD URIs (`nbd://`, `nbds://`, `nbd+unix://`, `nbds+unix://`) go to an NBD export
    /// through libnbd; anything else is a block device or a regular file. An `nbd…://`
    /// scheme libnbd knows but znbd does not use (`nbd+vsock://`) is refused as a URI,
    /// never created as a file of that name.
    public static let opener: BackingStoreOpener = { name throws(ZramError) in
        if NBDURI.isURI(name) { return try NBDBackingStore.open(name) }
        return try FileBackingStore.open(name)
    }
}
