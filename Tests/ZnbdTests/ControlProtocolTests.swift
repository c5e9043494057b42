import Foundation
import Platform
import Testing

@testable import ZnbdKit

/// The control protocol's wire format: typed requests and responses, and errno kinds
/// that survive the trip by name.
struct ControlProtocolTests {
    static let requests: [ControlRequest] = [
        .status,
        .get(device: "zram0", attribute: "mm_stat"),
        .set(device: "zram1", attribute: "mem_limit", value: "512M"),
        .hotAdd(algorithm: .zstd, diskSize: 8 << 20),
        .hotAdd(algorithm: nil, diskSize: nil),
        .hotRemove(device: "zram2"),
    ]

    @Test(arguments: requests)
    func requestsRoundTrip(_ request: ControlRequest) throws {
        let line = try JSONEncoder().encode(request)
        #expect(!line.contains(UInt8(ascii: "\n")))
        #expect(try JSONDecoder().decode(ControlRequest.self, from: line) == request)
    }

    /// A peer that trickles a request a byte at a time keeps resetting the receive
    /// timeout; the line's deadline still ends the read.
    @Test func aTrickledRequestLineEndsAtItsDeadline() throws {
        var fds: [Int32] = [0, 0]
        try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        defer { close(fds[0]) }
        let writer = fds[1]
        let trickle = Thread {
            // A byte every 20 ms for at most 2 s, never a newline.
            for _ in 0..<100 {
                var byte = UInt8(ascii: "{")
                guard send(writer, &byte, 1, Int32(MSG_NOSIGNAL)) == 1 else { break }
                usleep(20_000)
            }
            close(writer)
        }
        trickle.start()
        #expect(performing: {
            _ = try ControlChannel.readLine(fds[0], limit: 1 << 16, deadline: Deadline(after: .milliseconds(200)))
        }, throws: { error in
            (error as? ControlChannel.Failure)?.errno == ETIMEDOUT
        })
        shutdown(fds[0], Int32(SHUT_RDWR))  // the trickler's next send fails and it stops
    }

    @Test func hotAddNamesItsFields() throws {
        let line = try JSONEncoder().encode(ControlRequest.hotAdd(algorithm: .lz4hc, diskSize: 4096))
        let object = try #require(JSONSerialization.jsonObject(with: line) as? [String: Any])
        #expect(object["op"] as? String == "hot-add")
        #expect(object["algorithm"] as? String == "lz4hc")
        #expect(object["disksize"] as? UInt64 == 4096)
        #expect(object.count == 3)
    }

    @Test(arguments: [
        #"{"op":"get"}"#, #"{"op":"get","device":"zram0"}"#, #"{"op":"set","device":"zram0","attribute":"reset"}"#,
        #"{"op":"hot-remove"}"#, #"{"op":"teleport"}"#, #"{"device":"zram0"}"#,
        #"{"op":"hot-add","algorithm":"brotli"}"#, #"{"op":"hot-add","disksize":-1}"#, #"{"op":"hot-add","disksize":"1G"}"#,
    ])
    func incompleteRequestsDoNotDecode(_ text: String) {
        #expect(throws: (any Error).self) { try JSONDecoder().decode(ControlRequest.self, from: Data(text.utf8)) }
    }

    @Test(arguments: ControlError.Kind.allCases)
    func errorKindsTravelByErrnoName(_ kind: ControlError.Kind) throws {
        let response = ControlResponse.failure(ControlError(kind, "no"))
        let line = try JSONEncoder().encode(response)
        let object = try #require(JSONSerialization.jsonObject(with: line) as? [String: Any])
        #expect(object["ok"] as? Bool == false)
        #expect(object["errno"] as? String == kind.rawValue)
        #expect(try JSONDecoder().decode(ControlResponse.self, from: line) == response)
    }

    @Test func errnoNamesMatchTheirCValues() {
        for kind in ControlError.Kind.allCases {
            #expect(ControlError.Kind(errno: Self.errnoValue(kind.rawValue)) == kind, "\(kind)")
        }
        #expect(ControlError.Kind(errno: EPERM) == .ioError)
    }

    @Test func answersRoundTrip() throws {
        let status = ServerStatus(devices: [DeviceStatus(
            name: "zram0", disksize: 1 << 20, initstate: 1, comp_algorithm: "lz4", streams: 1,
            mm_stat: ["orig_data_size": 4096], io_stat: ["failed_reads": 0], connections: 2)])
        for response in [ControlResponse.done, .value("16777216\n"), .added(device: "zram3"), .status(status)] {
            let line = try JSONEncoder().encode(response)
            #expect(try JSONDecoder().decode(ControlResponse.self, from: line) == response)
        }
    }

    @Test func failPointsFailOnTheNthCompletionOnly() throws {
        var failPoints = try FailPoints(specification: "mkswap:2")
        try failPoints.check(.hotAdd)
        try failPoints.check(.mkswap)
        #expect(throws: Tool.Failure.self) { try failPoints.check(.mkswap) }
        try failPoints.check(.mkswap)
        var none = FailPoints()
        for step in FailPoints.Step.allCases { try none.check(step) }
        #expect(throws: Tool.Failure.self) { try FailPoints(specification: "mkswapp") }
        #expect(throws: Tool.Failure.self) { try FailPoints(specification: "mkswap:0") }
    }

    static func errnoValue(_ name: String) -> Int32 {
        switch name {
        case "EBUSY": EBUSY
        case "EINVAL": EINVAL
        case "ENOMEM": ENOMEM
        case "ENOSPC": ENOSPC
        case "E2BIG": E2BIG
        case "ENODEV": ENODEV
        case "ENXIO": ENXIO
        case "EIO": EIO
        case "EMSGSIZE": EMSGSIZE
        case "EPROTO": EPROTO
        case "ENOENT": ENOENT
        case "ECONNREFUSED": ECONNREFUSED
        case "EAGAIN": EAGAIN
        case "EACCES": EACCES
        default: -1
        }
    }
}
