import CPlatform

/// `posix_spawnattr_setflags` values, including glibc's `POSIX_SPAWN_SETSID`
/// (a macro Swift does not import).
public struct SpawnFlags: OptionSet, Sendable {
    public let rawValue: Int16
    public init(rawValue: Int16) { self.rawValue = rawValue }

    /// `POSIX_SPAWN_SETSIGMASK`: the child starts with the given signal mask.
    public static let setSignalMask = SpawnFlags(rawValue: cplatform_posix_spawn_setsigmask)
    /// `POSIX_SPAWN_SETSIGDEF`: the given signals start with their default dispositions.
    public static let setSignalDefaults = SpawnFlags(rawValue: cplatform_posix_spawn_setsigdef)
    /// `POSIX_SPAWN_SETSID`: the child starts a new session (no controlling terminal).
    public static let newSession = SpawnFlags(rawValue: cplatform_posix_spawn_setsid)
}
