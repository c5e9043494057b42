#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

@testable import ZnbdKit

/// Hostile input on the control socket (issue 10): random bytes, mutated requests,
/// JSON of the wrong shape, oversize and partial lines, many per connection. Every
/// line must get a well-formed answer, and afterwards the data written over NBD
/// must be unchanged and the server must still answer.
@Suite(.serialized) struct ControlFuzzTests {
    static let messageCount = 100_000
    static let dataSize = 8 << 20

    /// Requests to mutate. None can destroy zram0's data while a client holds it open:
    /// reset and hot-remove are EBUSY then, and the rest only read or tune it.
    static let seeds: [ControlRequest] = [
        .status,
        .get(device: "zram0", attribute: "disksize"),
        .get(device: "zram0", attribute: "mm_stat"),
        .get(device: "zram0", attribute: "comp_algorithm"),
        .set(device: "zram0", attribute: "mem_limit", value: "0"),
        .set(device: "zram0", attribute: "compact", value: "1"),
        .set(device: "zram0", attribute: "mem_used_max", value: "0"),
        .set(device: "zram0", attribute: "reset", value: "1"),
        .set(device: "zram0", attribute: "disksize", value: "1G"),
        .hotRemove(device: "zram0"),
        .hotRemove(device: "zram9"),
    ]

    @Test(.timeLimit(.minutes(5)))
    func hostileControlTrafficLeavesDataAndServerIntact() throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["ZNBD_FUZZ_SEED"] ?? "") ?? 0x7A72_616D_C0DE
        print("ControlFuzzTests seed \(seed) (set ZNBD_FUZZ_SEED to reproduce another)")
        var random = SplitMix64(seed: seed)
        let server = try ZnbdServer(["--size", "64M"])
        defer { server.stop() }

        // Data first: half incompressible, half repetitive, written by a real client.
        var data = [UInt8](repeating: 0, count: Self.dataSize)
        for index in 0..<Self.dataSize / 8 where index % 1024 < 512 {
            let word = random.next()
            withUnsafeBytes(of: word) { data.replaceSubrange(index * 8..<index * 8 + 8, with: $0) }
        }
        for index in stride(from: Self.dataSize / 2, to: Self.dataSize, by: 1) where data[index] == 0 {
            data[index] = UInt8(truncatingIfNeeded: index / 4096)
        }
        let written = server.directory + "/written.bin", readBack = server.directory + "/read.bin"
        _ = FileManager.default.createFile(atPath: written, contents: Data(data))
        try ExternalCommand.require("nbdcopy", [written, server.uri()], timeout: 120)

        let holder = try ExportHolder(server)
        var fuzzer = ControlFuzzer(random: random, seeds: Self.seeds)
        var sent = 0, connections = 0
        while sent < Self.messageCount {
            let lines = min(Self.messageCount - sent, Int.random(in: 1...400, using: &fuzzer.random))
            try fuzzer.runConnection(server.control, lines: lines, seed: seed)
            sent += lines
            connections += 1
            if connections % 64 == 0 {
                #expect(server.isRunning, "seed \(seed): the server died after \(sent) messages")
                guard server.isRunning else { break }
            }
        }
        print("ControlFuzzTests: \(sent) messages on \(connections) connections, \(fuzzer.oversize) oversize, \(fuzzer.partial) partial lines")
        holder.release()

        #expect(server.isRunning, "seed \(seed)")
        let status = try ControlClient(path: server.control).status()
        #expect(status.devices.map(\.name) == ["zram0"], "seed \(seed)")
        try ExternalCommand.require("nbdcopy", [server.uri(), readBack], timeout: 120)
        let back = try #require(FileManager.default.contents(atPath: readBack))
        #expect(back.count == 64 << 20, "seed \(seed)")
        #expect(back.prefix(Self.dataSize) == Data(data), "seed \(seed): data written before the fuzzing changed")
        #expect(back.dropFirst(Self.dataSize).allSatisfy { $0 == 0 }, "seed \(seed)")
    }
}

/// Makes hostile control lines and checks the answer to each.
struct ControlFuzzer {
    var random: SplitMix64
    let seeds: [[UInt8]]
    let seedRequests: [ControlRequest]
    private(set) var oversize = 0
    private(set) var partial = 0

    init(random: SplitMix64, seeds: [ControlRequest]) {
        self.random = random
        seedRequests = seeds
        self.seeds = seeds.map { Array(try! JSONEncoder().encode($0)) }
    }

    /// What a line is, so its answer can be checked.
    enum Line {
        /// A request sent as the client would: its answer is known.
        case valid(ControlRequest)
        /// Cannot decode as a request: the answer is EINVAL.
        case malformed
        /// Anything: the answer only has to be a well-formed response.
        case mutated
    }

    /// Lines sent before their answers are read. A client must read answers to go on
    /// sending: the server stops reading while its answers wait unread, and drops the
    /// client after 30 s. Hundreds of answers fill a Unix socket's send buffer (each one
    /// an skb of a kilobyte or more), so a whole connection's lines at once could block
    /// both sides until then.
    static let pipelineDepth = 16

    /// One connection: `lines` messages pipelined ``pipelineDepth`` at a time, every
    /// answer read and checked, then a clean close, a partial line, or a line over the limit.
    mutating func runConnection(_ path: String, lines: Int, seed: UInt64) throws {
        let connection = try ControlConnection(path)
        var lineBytes: [[UInt8]] = []
        var kinds: [Line] = []
        for _ in 0..<lines {
            let (bytes, kind) = makeLine()
            lineBytes.append(bytes + [UInt8(ascii: "\n")])
            kinds.append(kind)
        }
        for start in stride(from: 0, to: lines, by: Self.pipelineDepth) {
            let group = start..<min(lines, start + Self.pipelineDepth)
            try connection.send(Array(lineBytes[group].joined()))
            for index in group {
                guard let response = try connection.receive() else {
                    Issue.record("seed \(seed): the server hung up after \(index) of \(lines) answers")
                    return
                }
                check(response, for: kinds[index], seed: seed)
            }
        }
        switch Int.random(in: 0..<100, using: &random) {
        case 0..<8:
            partial += 1
            try connection.send(makeLine().bytes)  // no newline: the server sees EOF mid-line
        case 8..<12:
            oversize += 1
            let length = ControlServer.requestLimit + Int.random(in: 1...4096, using: &random)
            try? connection.send([UInt8](repeating: UInt8(ascii: "{"), count: length) + [UInt8(ascii: "\n")])
            let answer = try connection.receive()
            guard case .failure(let error) = answer, error.kind == .messageTooLong else {
                Issue.record("seed \(seed): an oversize line was answered \(String(describing: answer))")
                return
            }
            #expect(try connection.receive() == nil, "seed \(seed): the server kept reading after an oversize line")
        default:
            break
        }
    }

    private func check(_ response: ControlResponse, for line: Line, seed: UInt64) {
        switch line {
        case .malformed:
            guard case .failure(let error) = response, error.kind == .invalidArgument else {
                Issue.record("seed \(seed): a malformed line was answered \(response)")
                return
            }
        case .valid(let request):
            switch (request, response) {
            case (.status, .status(let status)):
                #expect(status.devices.contains { $0.name == "zram0" && $0.connections > 0 }, "seed \(seed)")
            case (.get(_, "disksize"), .value(let value)):
                #expect(value == "\(64 << 20)\n", "seed \(seed)")
            case (.get, .value), (.set(_, "mem_limit", _), .done), (.set(_, "compact", _), .done),
                (.set(_, "mem_used_max", _), .done):
                break
            case (.set(_, "reset", _), .failure(let error)), (.set(_, "disksize", _), .failure(let error)),
                (.hotRemove("zram0"), .failure(let error)):
                #expect(error.kind == .busy, "seed \(seed): \(request) while held")
            case (.hotRemove("zram9"), .failure(let error)):
                #expect(error.kind == .noDevice, "seed \(seed)")
            default:
                Issue.record("seed \(seed): \(request) was answered \(response)")
            }
        case .mutated:
            break  // decoding it was the check
        }
    }

    /// One line without its newline.
    mutating func makeLine() -> (bytes: [UInt8], kind: Line) {
        switch Int.random(in: 0..<100, using: &random) {
        case 0..<25:
            let length = Int.random(in: 0...300, using: &random)
            // Not JSON: it cannot start with a JSON value's first byte.
            let bytes = (0..<length).map { _ in Self.notNewline(UInt8.random(in: 0...255, using: &random)) }
            let startsLikeJSON = bytes.first.map { Array(#"{["-0123456789tfn "#.utf8).contains($0) } ?? false
            return (bytes, startsLikeJSON ? .mutated : .malformed)
        case 25..<75:
            return (mutate(seeds.randomElement(using: &random)!), .mutated)
        case 75..<90:
            let request = seedRequests.randomElement(using: &random)!
            return (Array(try! JSONEncoder().encode(request)), .valid(request))
        default:
            return (wrongShape(), .malformed)
        }
    }

    /// Valid JSON that is not a request: wrong types, missing fields, deep nesting.
    private mutating func wrongShape() -> [UInt8] {
        let depth = Int.random(in: 1...30_000, using: &random)
        let shapes = [
            "[]", "null", "42", #""status""#, #"{"op":5}"#, #"{"op":null}"#, #"{"op":["get"]}"#,
            #"{"op":"get","device":0,"attribute":"disksize"}"#, #"{"op":"hot-add","disksize":1e400}"#,
            #"{"op":"set","device":"zram0","attribute":"mem_limit","value":{}}"#,
            String(repeating: "[", count: depth) + String(repeating: "]", count: depth),
            String(repeating: #"{"op":"#, count: depth / 8) + "1" + String(repeating: "}", count: depth / 8),
        ]
        return Array(shapes.randomElement(using: &random)!.utf8)
    }

    /// One to four byte-level mutations: flip, replace, insert, delete, duplicate, truncate.
    private mutating func mutate(_ original: [UInt8]) -> [UInt8] {
        var bytes = original
        for _ in 0..<Int.random(in: 1...4, using: &random) where !bytes.isEmpty {
            let at = Int.random(in: 0..<bytes.count, using: &random)
            switch Int.random(in: 0..<6, using: &random) {
            case 0: bytes[at] ^= 1 << UInt8.random(in: 0...7, using: &random)
            case 1: bytes[at] = UInt8.random(in: 0...255, using: &random)
            case 2: bytes.insert(Array(#"{}[]",:0"#.utf8).randomElement(using: &random)!, at: at)
            case 3: bytes.remove(at: at)
            case 4: bytes.insert(contentsOf: bytes[at...].prefix(Int.random(in: 1...16, using: &random)), at: at)
            default: bytes.removeSubrange(at...)
            }
        }
        return bytes.map(Self.notNewline)
    }

    private static func notNewline(_ byte: UInt8) -> UInt8 { byte == UInt8(ascii: "\n") ? UInt8(ascii: " ") : byte }
}
