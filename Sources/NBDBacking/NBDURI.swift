/// The NBD URIs a `backing_dev` may name (the NBD URI specification's schemes for
/// TCP and Unix sockets, with and without TLS).
public enum NBDURI {
    public static let schemes = ["nbd://", "nbds://", "nbd+unix://", "nbds+unix://"]

    /// Whether `name` is meant as an NBD URI: it starts with `nbd` and has a `://`
    /// (a path never does). An `nbd…` scheme this store does not support still counts,
    /// so that it is refused with the reason instead of becoming a file of that name.
    public static func isURI(_ name: String) -> Bool {
        name.hasPrefix("nbd") && name.contains("://")
    }

    /// Whether the scheme is one this store connects to.
    public static func isSupported(_ name: String) -> Bool {
        schemes.contains { name.hasPrefix($0) }
    }
}
