import Logging
@testable import NBD

#if canImport(Glibc)
import Glibc
#endif

/// A server on a Unix socket in a fresh temp directory, serving in-memory exports.
final class TestServer: Sendable {
    let directory: String
    let socketPath: String
    let export: MemoryExport
    let registry: ExportRegistry
    let server: NBDServer

    init(
        size: UInt64 = 64 << 20, extraExports: [MemoryExport] = [], tcp: Bool = false,
        configure: (inout NBDServerConfiguration) -> Void = { _ in }
    ) throws {
        var template = Array("/tmp/nbdtest-XXXXXX".utf8CString)
        guard let dir = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw ClientError("mkdtemp failed")
        }
        directory = String(cString: dir)
        socketPath = directory + "/run/nbd.sock"
        export = MemoryExport(name: "zram0", size: size)
        registry = ExportRegistry(defaultExportName: "zram0", exports: [export] + extraExports)
        var config = NBDServerConfiguration(unixSocketPath: socketPath, tcpPort: tcp ? 0 : nil)
        configure(&config)
        var logger = Logger(label: "nbd-test")
        logger.logLevel = .warning
        server = NBDServer(configuration: config, exports: registry, logger: logger)
        try server.start()
    }

    func client(timeoutSeconds: Int = 10) throws -> RawClient {
        try RawClient(unixPath: socketPath, timeoutSeconds: timeoutSeconds)
    }

    /// A client that went through the libnbd-style handshake.
    func connected(structured: Bool = true, meta: Bool = true) throws -> RawClient {
        let c = try client()
        try c.handshake(structured: structured, meta: meta)
        return c
    }

    /// The `nbd+unix` URI of an export.
    func uri(_ export: String = "zram0") -> String { "nbd+unix:///\(export)?socket=\(socketPath)" }

    func stop() {
        server.shutdown()
        _ = rmdirRecursive(directory)
    }

    private func rmdirRecursive(_ path: String) -> Bool {
        unlink(path + "/run/nbd.sock")
        rmdir(path + "/run")
        for f in (try? listDirectory(path)) ?? [] { unlink(path + "/" + f) }
        return rmdir(path) == 0
    }

    private func listDirectory(_ path: String) throws -> [String] {
        guard let d = opendir(path) else { return [] }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}

/// Runs `body` with a started server and always shuts it down.
func withServer<T>(
    size: UInt64 = 64 << 20, extraExports: [MemoryExport] = [], tcp: Bool = false,
    configure: (inout NBDServerConfiguration) -> Void = { _ in },
    _ body: (TestServer) throws -> T
) throws -> T {
    let s = try TestServer(size: size, extraExports: extraExports, tcp: tcp, configure: configure)
    defer { s.stop() }
    return try body(s)
}
