/// How exports reach the kernel.
public enum AttachMethod: String, CaseIterable, Sendable {
    /// nbd-client when `modprobe nbd` succeeds, else nbdfuse + losetup.
    case auto
    /// nbd-client -unix SOCK -N zramK -b 4096 /dev/nbdK.
    case nbd
    /// nbdfuse RUNTIME/nbdfuse/zramK, then losetup over RUNTIME/nbdfuse/zramK/nbd.
    case fuse
}
