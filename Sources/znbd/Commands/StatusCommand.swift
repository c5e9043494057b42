import ArgumentParser
import Foundation
import SwiftZram
import ZnbdKit

/// `znbd status`: zramctl's view of the running server's devices.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the server's devices, as zramctl does.")

    @OptionGroup var options: ControlOptions

    @Flag(help: "Print JSON with zram's mm_stat and io_stat fields by name.")
    var json = false

    @Flag(help: "Print sizes in bytes.")
    var bytes = false

    @Flag(help: "Don't print the header line.")
    var noheadings = false

    @Flag(help: "Use the raw output format (no column alignment).")
    var raw = false

    @Option(help: "Columns to print, comma separated (see --output-all).")
    var output: String?

    @Flag(help: "Print every column.")
    var outputAll = false

    func run() throws {
        let status = try options.client.status()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(status), as: UTF8.self))
            return
        }
        let columns = try selectedColumns()
        let runtime = RuntimePaths.containing(controlSocket: options.control)
        // What swapon/mount recorded next to this control socket, if it is about this server.
        var state = (try? SetupState.load(from: runtime.stateFile)) ?? SetupState()
        if let recorded = state.control, recorded != options.control { state = SetupState() }
        let mounts = AttachedDevices.discover(state: state, serverDirectory: runtime.directory)
        let rows = status.devices.map { device in
            columns.map { $0.value(device, bytes: bytes, mountpoint: mounts[device.name] ?? "") }
        }
        print(StatusTable.render(header: noheadings ? nil : columns.map(\.rawValue), rows: rows, raw: raw,
                                 rightAligned: columns.map(\.isNumeric)))
    }

    private func selectedColumns() throws -> [StatusColumn] {
        if outputAll { return StatusColumn.allCases }
        guard let output else { return StatusColumn.defaults }
        return try output.split(separator: ",").map { name in
            guard let column = StatusColumn(rawValue: name.uppercased()) else {
                throw ValidationError("unknown column '\(name)'; available: \(StatusColumn.allCases.map(\.rawValue).joined(separator: ","))")
            }
            return column
        }
    }
}

/// zramctl's columns.
enum StatusColumn: String, CaseIterable {
    case name = "NAME", algorithm = "ALGORITHM", disksize = "DISKSIZE", data = "DATA", compr = "COMPR"
    case total = "TOTAL", streams = "STREAMS", mountpoint = "MOUNTPOINT"
    case memLimit = "MEM-LIMIT", memUsed = "MEM-USED", migrated = "MIGRATED", compRatio = "COMP-RATIO"
    case same = "SAME", huge = "HUGE"

    static let defaults: [StatusColumn] = [.name, .algorithm, .disksize, .data, .compr, .total, .streams, .mountpoint]

    var isNumeric: Bool { ![.name, .algorithm, .mountpoint].contains(self) }

    func value(_ device: DeviceStatus, bytes: Bool, mountpoint: String) -> String {
        func size(_ value: UInt64) -> String { bytes ? String(value) : HumanSize.format(value) }
        let mm = device.mm_stat
        switch self {
        case .name: return device.name
        case .algorithm: return device.comp_algorithm
        case .disksize: return size(device.disksize)
        case .data: return size(mm["orig_data_size"] ?? 0)
        case .compr: return size(mm["compr_data_size"] ?? 0)
        case .total: return size(mm["mem_used_total"] ?? 0)
        case .streams: return String(device.streams)
        case .mountpoint: return mountpoint
        case .memLimit: return size(mm["mem_limit"] ?? 0)
        case .memUsed: return size(mm["mem_used_max"] ?? 0)
        case .migrated: return size((mm["pages_compacted"] ?? 0) * 4096)
        case .compRatio:
            let total = mm["mem_used_total"] ?? 0
            return total == 0 ? "0" : String(format: "%.2f", Double(mm["orig_data_size"] ?? 0) / Double(total))
        case .same: return String(mm["same_pages"] ?? 0)
        case .huge: return String(mm["huge_pages"] ?? 0)
        }
    }
}

enum StatusTable {
    static func render(header: [String]?, rows: [[String]], raw: Bool, rightAligned: [Bool]) -> String {
        let all = (header.map { [$0] } ?? []) + rows
        if raw { return all.map { $0.joined(separator: " ") }.joined(separator: "\n") }
        let widths = (0..<(all.first?.count ?? 0)).map { column in all.map { $0[column].count }.max() ?? 0 }
        return all.map { row in
            row.enumerated().map { column, cell in
                let pad = String(repeating: " ", count: widths[column] - cell.count)
                return rightAligned[column] ? pad + cell : (column == row.count - 1 ? cell : cell + pad)
            }.joined(separator: " ")
        }.joined(separator: "\n")
    }
}
