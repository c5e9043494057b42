// swift-tools-version: 6.2
// Linux only: the store, the NBD server and the operations use Linux syscalls (mlock2,
// prctl, MADV_DONTNEED, /proc). InlineArray and treatAllWarnings need Swift 6.2.
import PackageDescription

let strict: [SwiftSetting] = [.treatAllWarnings(as: .error)]

let package = Package(
    name: "SwiftZram",
    products: [
        .library(name: "SwiftZram", targets: ["SwiftZram"]),
        .library(name: "NBD", targets: ["NBD"]),
        // For the benchmarks: the production request path through ZramExport.
        .library(name: "ZnbdKit", targets: ["ZnbdKit"]),
        .library(name: "Platform", targets: ["Platform"]),
        .executable(name: "znbd", targets: ["znbd"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CLZ4", pkgConfig: "liblz4",
            providers: [.apt(["liblz4-dev"])]),
        .systemLibrary(
            name: "CLZO", pkgConfig: "lzo2",
            providers: [.apt(["liblzo2-dev"])]),
        .systemLibrary(
            name: "CZstd", pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(
            name: "CFuse3", pkgConfig: "fuse3",
            providers: [.apt(["libfuse3-dev"])]),
        .systemLibrary(
            name: "CGnuTLS", pkgConfig: "gnutls",
            providers: [.apt(["libgnutls28-dev"])]),
        .systemLibrary(
            name: "CLibNBD", pkgConfig: "libnbd",
            providers: [.apt(["libnbd-dev"])]),
        // Linux calls Swift cannot make cleanly (variadic prctl/open/fcntl, _GNU_SOURCE constants).
        .target(name: "CPlatform"),
        // The one platform layer: threads, Unix sockets, process hardening, runtime-directory
        // files; its system calls throw errno.
        .target(
            name: "Platform",
            dependencies: ["CPlatform", .product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: strict),
        .target(
            name: "SwiftZram",
            dependencies: ["CLZ4", "CLZO", "CZstd", "Platform"],
            swiftSettings: strict),
        // Backing stores outside SwiftZram: an NBD export reached through libnbd (`nbd://` URIs).
        .target(
            name: "NBDBacking",
            dependencies: ["SwiftZram", "CLibNBD", "Platform"],
            swiftSettings: strict),
        .target(
            name: "NBD",
            dependencies: ["Platform", "CGnuTLS", .product(name: "Logging", package: "swift-log")],
            exclude: ["README-design.md"],
            swiftSettings: strict),
        // Every export of a registry as a file in a FUSE directory, for loop devices
        // on kernels without the nbd driver (libfuse's low-level API, znbd's own threads).
        .target(
            name: "FUSEExport",
            dependencies: ["CFuse3", "NBD", "Platform"],
            swiftSettings: strict),
        // The control plane and operations: the control socket, the devices' exports,
        // setup orchestration (swapon/mount), the config language.
        .target(
            name: "ZnbdKit",
            dependencies: [
                "SwiftZram", "NBD", "NBDBacking", "Platform",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        // Only the ArgumentParser commands.
        .executableTarget(
            name: "znbd",
            dependencies: [
                "ZnbdKit", "SwiftZram", "NBD", "FUSEExport", "Platform",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        .testTarget(name: "PlatformTests", dependencies: ["Platform"], swiftSettings: strict),
        .testTarget(name: "SwiftZramTests", dependencies: ["SwiftZram", "Platform"], swiftSettings: strict),
        .testTarget(name: "NBDTests", dependencies: ["NBD", "Platform"], swiftSettings: strict),
        .testTarget(name: "NBDBackingTests", dependencies: ["NBDBacking", "SwiftZram"], swiftSettings: strict),
        // Drives the built `znbd` binary (swift build builds every product) with real clients and the kernel (nbdfuse + loop).
        .testTarget(name: "ZnbdTests", dependencies: ["ZnbdKit", "NBDBacking", "SwiftZram", "Platform"], swiftSettings: strict),
    ],
    swiftLanguageModes: [.v6]
)
