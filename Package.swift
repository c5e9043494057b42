// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "SwiftZram",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "SwiftZram", targets: ["SwiftZram"]),
        .library(name: "NBD", targets: ["NBD"]),
        .executable(name: "znbd", targets: ["znbd"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/ordo-one/package-benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
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
        .target(
            name: "SwiftZram",
            dependencies: ["CLZ4", "CLZO", "CZstd"]),
        .target(
            name: "NBD",
            dependencies: [.product(name: "Logging", package: "swift-log")],
            exclude: ["README-design.md"]),
        .executableTarget(
            name: "znbd",
            dependencies: [
                "SwiftZram", "NBD",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(name: "SwiftZramTests", dependencies: ["SwiftZram"]),
        .testTarget(name: "NBDTests", dependencies: ["NBD"]),
        // Drives the built `znbd` binary with real clients and the kernel (nbdfuse + loop).
        .testTarget(name: "ZnbdTests", dependencies: ["znbd"]),
        .executableTarget(
            name: "StoreBenchmarks",
            dependencies: [
                "SwiftZram",
                .product(name: "Benchmark", package: "package-benchmark"),
            ],
            path: "Benchmarks/StoreBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]),
        .executableTarget(
            name: "ProtocolBenchmarks",
            dependencies: [
                "NBD",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Benchmark", package: "package-benchmark"),
            ],
            path: "Benchmarks/ProtocolBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]),
    ],
    swiftLanguageModes: [.v6]
)
