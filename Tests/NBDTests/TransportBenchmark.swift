import Foundation
import Testing
@testable import NBD

/// fio against this server (in-memory export) and nbdkit, in one run.
/// Not part of the normal suite: run with
/// `NBD_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter TransportBenchmark`.
@Suite(.serialized, .enabled(if: ProcessInfo.processInfo.environment["NBD_BENCH"] != nil))
struct TransportBenchmark {
    struct Workload {
        var name: String
        var rw: String
        var bs: String
        var depth: Int
        var jobs: Int = 1
    }

    static let workloads = [
        Workload(name: "4k randwrite QD1", rw: "randwrite", bs: "4k", depth: 1),
        Workload(name: "4k randread QD1", rw: "randread", bs: "4k", depth: 1),
        Workload(name: "4k randwrite QD32", rw: "randwrite", bs: "4k", depth: 32),
        Workload(name: "4k randread QD32", rw: "randread", bs: "4k", depth: 32),
        Workload(name: "4k randread QD16 x4 jobs", rw: "randread", bs: "4k", depth: 16, jobs: 4),
        Workload(name: "1M write QD4 (MB/s)", rw: "write", bs: "1m", depth: 4),
        Workload(name: "1M read QD4 (MB/s)", rw: "read", bs: "1m", depth: 4),
    ]

    static var runtime: String { ProcessInfo.processInfo.environment["NBD_BENCH_SECONDS"] ?? "8" }

    /// IOPS (or MB/s for 1M workloads) of one fio run.
    static func fio(_ uri: String, _ w: Workload) throws -> Double {
        let r = try Tools.run(
            "fio",
            [
                "--name=bench", "--ioengine=nbd", "--uri=\(uri)", "--rw=\(w.rw)", "--bs=\(w.bs)",
                "--iodepth=\(w.depth)", "--numjobs=\(w.jobs)", "--size=512m", "--time_based", "--runtime=\(runtime)",
                "--buffer_compress_percentage=60", "--refill_buffers", "--group_reporting", "--output-format=json",
            ], timeout: .seconds(120))
        let text = r.stdout[(r.stdout.firstIndex(of: "{") ?? r.stdout.startIndex)...]
        guard r.status == 0, let json = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
            let job = (json["jobs"] as? [[String: Any]])?.first
        else { throw ClientError("fio failed: \(r.output)") }
        let side = job[w.rw.contains("write") ? "write" : "read"] as? [String: Any] ?? [:]
        if w.bs == "1m" { return (side["bw_bytes"] as? Double ?? Double(side["bw_bytes"] as? Int ?? 0)) / 1e6 }
        return side["iops"] as? Double ?? 0
    }

    /// Starts nbdkit in the foreground (it is ended by the caller through the returned process).
    static func nbdkit(_ dir: String, _ name: String, _ args: [String]) throws -> (uri: String, process: Process) {
        let sock = "\(dir)/\(name).sock"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try Tools.find("nbdkit"))
        p.arguments = ["-f", "--unix", sock] + args
        p.standardInput = FileHandle.nullDevice
        try p.run()
        for _ in 0..<250 where access(sock, F_OK) != 0 { usleep(20_000) }
        return ("nbd+unix:///?socket=\(sock)", p)
    }

    @Test func fioAgainstNbdkit() throws {
        let spin = Int(ProcessInfo.processInfo.environment["NBD_SPIN_US"] ?? "")
        try withServer(size: 1 << 30, configure: { c in if let spin { c.receiveSpin = .microseconds(spin) } }) { s in
            let sparse = try Self.nbdkit(s.directory, "sparse", ["memory", "1G", "allocator=sparse"])
            defer {
                kill(sparse.process.processIdentifier, SIGKILL)  // SIGTERM is blocked in children of the test runner
                sparse.process.waitUntilExit()
            }
            let null = try Self.nbdkit(s.directory, "null", ["null", "1G"])
            defer {
                kill(null.process.processIdentifier, SIGKILL)  // SIGTERM is blocked in children of the test runner
                null.process.waitUntilExit()
            }
            var table = "| workload | znbd (memory export) | nbdkit memory sparse | nbdkit null | znbd / sparse |\n|---|---|---|---|---|\n"
            for w in Self.workloads {
                let ours = try Self.fio(s.uri(), w)
                let theirs = try Self.fio(sparse.uri, w)
                let ceiling = try Self.fio(null.uri, w)
                FileHandle.standardError.write(Data("\(w.name): \(Int(ours)) \(Int(theirs)) \(Int(ceiling))\n".utf8))
                table += "| \(w.name) | \(Int(ours)) | \(Int(theirs)) | \(Int(ceiling)) | \(String(format: "%.2f", ours / theirs))x |\n"
            }
            print(table)
        }
    }
}

/// Serves a 1 GiB in-memory export at `NBD_SERVE_PATH` for `NBD_SERVE_SECONDS` (default 60),
/// for running fio or other clients by hand against the release build.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["NBD_SERVE_PATH"] != nil))
struct ManualServe {
    @Test func serve() throws {
        let env = ProcessInfo.processInfo.environment
        let path = env["NBD_SERVE_PATH"]!
        let seconds = Int(env["NBD_SERVE_SECONDS"] ?? "60") ?? 60
        let export = MemoryExport(name: "zram0", size: 1 << 30)
        var config = NBDServerConfiguration(unixSocketPath: path)
        if let us = Int(env["NBD_SPIN_US"] ?? "") { config.receiveSpin = .microseconds(us) }
        let server = NBDServer(
            configuration: config, exports: ExportRegistry(exports: [export]), logger: .init(label: "serve"))
        try server.start()
        defer { server.shutdown() }
        sleep(UInt32(seconds))
    }
}
