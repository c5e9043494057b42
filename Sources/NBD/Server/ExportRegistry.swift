import Synchronization

/// The exports a server offers, by name; exports may come and go at runtime.
///
/// The empty name (what nbd-client and libnbd send when no name is given)
/// means the default export.
public final class ExportRegistry: Sendable {
    private struct State {
        var exports: [String: any BlockExport] = [:]
        /// Live `ExportAttachment`s per export object (a re-added name is a new object).
        var attachments: [ObjectIdentifier: Int] = [:]
        var defaultName: String
    }

    /// What `remove(named:ifUnused:)` did.
    public enum Removal {
        /// The export is gone; no client holds it.
        case removed(any BlockExport)
        /// Clients hold it, so it stays.
        case inUse(any BlockExport, clients: Int)
        /// No export has that name.
        case notFound
    }

    private let state: Mutex<State>

    /// - Parameters:
    ///   - defaultExportName: the export the empty name resolves to.
    ///   - exports: the initial exports.
    public init(defaultExportName: String = "zram0", exports: [any BlockExport] = []) {
        var s = State(defaultName: defaultExportName)
        for e in exports { s.exports[e.name] = e }
        state = Mutex(s)
    }

    /// Adds an export. Returns false, changing nothing, when the name is taken.
    @discardableResult
    public func add(_ export: any BlockExport) -> Bool {
        state.withLock { s in
            guard s.exports[export.name] == nil else { return false }
            s.exports[export.name] = export
            return true
        }
    }

    /// Removes an export so new clients cannot open it, whether or not clients hold it.
    /// Clients already attached keep using it until they disconnect (see
    /// `NBDServer.disconnectClients(export:)`); `remove(named:ifUnused:)` refuses instead.
    @discardableResult
    public func remove(named name: String) -> (any BlockExport)? {
        state.withLock { $0.exports.removeValue(forKey: name) }
    }

    /// Withdraws an export atomically with respect to `open(_:)`: with `ifUnused`, only
    /// when no client holds it, checked and removed under one lock, so no client can
    /// attach to an export that is being removed.
    public func remove(named name: String, ifUnused: Bool) -> Removal {
        state.withLock { s in
            guard let export = s.exports[name] else { return .notFound }
            let clients = s.attachments[ObjectIdentifier(export)] ?? 0
            if ifUnused && clients > 0 { return .inUse(export, clients: clients) }
            s.exports.removeValue(forKey: name)
            return .removed(export)
        }
    }

    /// Looks an export up and attaches a client to it in one step (the empty name
    /// means the default export); nil when there is no such export. The caller owns
    /// the attachment and releases it when the client leaves transmission.
    public func open(_ name: String) -> ExportAttachment? {
        let export: (any BlockExport)? = state.withLock { s in
            guard let export = s.exports[name.isEmpty ? s.defaultName : name] else { return nil }
            s.attachments[ObjectIdentifier(export), default: 0] += 1
            return export
        }
        return export.map { ExportAttachment(export: $0, registry: self) }
    }

    /// Clients holding `export` through `open(_:)`.
    public func attachmentCount(of export: any BlockExport) -> Int {
        state.withLock { $0.attachments[ObjectIdentifier(export)] ?? 0 }
    }

    /// An attachment made by `open(_:)` was released.
    func detach(_ export: any BlockExport) {
        state.withLock { s in
            let key = ObjectIdentifier(export)
            let left = (s.attachments[key] ?? 0) - 1
            precondition(left >= 0, "an export was detached more often than attached")
            s.attachments[key] = left == 0 ? nil : left
        }
    }

    /// The export for a name; the empty name means the default export.
    public func lookup(_ name: String) -> (any BlockExport)? {
        state.withLock { s in s.exports[name.isEmpty ? s.defaultName : name] }
    }

    /// The name the empty export name resolves to.
    public var defaultExportName: String {
        get { state.withLock { $0.defaultName } }
        set { state.withLock { $0.defaultName = newValue } }
    }

    /// Every export, sorted by name.
    public var all: [any BlockExport] {
        state.withLock { s in s.exports.values.sorted { $0.name < $1.name } }
    }
}
