// swift-tools-version: 6.2
// The benchmarks, apart from the root package so that `swift build` there does not build
// package-benchmark. Run from the repository root: scripts/check-allocations.sh
import PackageDescription

let package = Package(
    name: "SwiftZramBenchmarks",
    dependencies: [
        .package(name: "SwiftZram", path: ".."),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/ordo-one/package-benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "StoreBenchmarks",
            dependencies: [
                .product(name: "SwiftZram", package: "SwiftZram"),
                .product(name: "Benchmark", package: "package-benchmark"),
            ],
            path: "StoreBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]),
        .executableTarget(
            name: "ProtocolBenchmarks",
            dependencies: [
                .product(name: "NBD", package: "SwiftZram"),
                .product(name: "SwiftZram", package: "SwiftZram"),
                .product(name: "ZnbdKit", package: "SwiftZram"),
                .product(name: "Platform", package: "SwiftZram"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Benchmark", package: "package-benchmark"),
            ],
            path: "ProtocolBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]),
    ],
    swiftLanguageModes: [.v6]
)
