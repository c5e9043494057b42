import Synchronization

/// The exports a server offers, by name; exports may come and go at runtime.
///
/// The empty name (what nbd-client and libnbd send when no name is given)
/// means the default export.
public final class ExportRegistry: Sendable {
    private struct State {
        var exports: [String: any BlockExport] = [:]
        var defaultName: String
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

    /// Removes an export so new clients cannot open it. Clients already attached
    /// keep using it until they disconnect (see `NBDServer.disconnectClients(export:)`).
    @discardableResult
    public func remove(named name: String) -> (any BlockExport)? {
        state.withLock { $0.exports.removeValue(forKey: name) }
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
