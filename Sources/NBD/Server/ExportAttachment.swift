import Synchronization

/// A client's hold on an export, from entering transmission until `release()`.
///
/// `ExportRegistry.open(_:)` makes one atomically with the lookup, so a
/// `remove(named:ifUnused:)` either sees it (and refuses) or happened first
/// (and the client is refused). The connection releases it when transmission
/// ends; release is idempotent and also runs when the last reference goes.
public final class ExportAttachment: Sendable {
    public let export: any BlockExport
    /// The registry that counts this attachment; nil for a handshake built without one (tests).
    private let registry: ExportRegistry?
    private let released = Atomic<Bool>(false)

    init(export: any BlockExport, registry: ExportRegistry?) {
        self.export = export
        self.registry = registry
        export.clientAttached()
    }

    deinit { release() }

    /// Ends the hold: the export's `clientDetached()`, then the registry forgets it.
    public func release() {
        guard !released.exchange(true, ordering: .acquiringAndReleasing) else { return }
        export.clientDetached()
        registry?.detach(export)
    }
}
