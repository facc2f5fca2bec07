#if canImport(Glibc)
import Glibc
import RTCBase
#endif

/// Machine-readable results (no Foundation in rtcam: a small JSON writer of its own).
indirect enum JSONValue: Sendable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    func serialized(indent: Int = 0) -> String {
        let pad = String(repeating: "  ", count: indent + 1)
        let closing = String(repeating: "  ", count: indent)
        switch self {
        case .null: return "null"
        case let .bool(value): return value ? "true" : "false"
        case let .int(value): return String(value)
        case let .double(value):
            guard value.isFinite else { return "null" }
            // Round to 4 decimals: the figures are measurements, not exact values.
            let rounded = (value * 10_000).rounded() / 10_000
            return rounded == rounded.rounded() && abs(rounded) < 1e15 ? String(Int(rounded)) : String(rounded)
        case let .string(value): return value.jsonQuoted
        case let .array(values):
            if values.isEmpty { return "[]" }
            // Arrays of numbers stay on one line.
            if values.allSatisfy({ if case .object = $0 { return false }; if case .array = $0 { return false }; return true }) {
                return "[" + values.map { $0.serialized() }.joined(separator: ", ") + "]"
            }
            return "[\n" + values.map { pad + $0.serialized(indent: indent + 1) }.joined(separator: ",\n") + "\n" + closing + "]"
        case let .object(members):
            if members.isEmpty { return "{}" }
            return "{\n" + members.map { pad + $0.0.jsonQuoted + ": " + $0.1.serialized(indent: indent + 1) }
                .joined(separator: ",\n") + "\n" + closing + "}"
        }
    }
}

extension String {
    func padded(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }

    func rightAligned(to width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}

/// Fixed-point formatting without Foundation.
func format(_ value: Double, decimals: Int = 2) -> String {
    guard value.isFinite else { return "-" }
    var scale = 1.0
    for _ in 0 ..< decimals { scale *= 10 }
    let scaled = Int64((abs(value) * scale).rounded())
    let whole = scaled / Int64(scale)
    var text = (value < 0 && scaled != 0 ? "-" : "") + String(whole)
    if decimals > 0 {
        text += "." + String(scaled % Int64(scale)).leftPadded(to: decimals)
    }
    return text
}

/// A plain text table: header row, rule, rows; numbers right-aligned.
func printTable(_ title: String, header: [String], rows: [[String]]) {
    var widths = header.map(\.count)
    for row in rows {
        for (index, cell) in row.enumerated() where index < widths.count { widths[index] = max(widths[index], cell.count) }
    }
    print("\n" + title)
    print(header.enumerated().map { $0.element.rightAligned(to: widths[$0.offset]) }.joined(separator: "  "))
    print(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  "))
    for row in rows {
        print(row.enumerated().map { $0.element.rightAligned(to: widths[$0.offset]) }.joined(separator: "  "))
    }
}

/// Writes `text` to `path` (creating the parent directory), or fails loudly.
func writeFile(_ path: String, _ text: String) {
    var parent = path
    if let slash = parent.lastIndex(of: "/") {
        parent = String(parent[..<slash])
        if !parent.isEmpty { makeDirectories(parent) }
    }
    guard let file = fopen(path, "w") else {
        fatalError("cannot write \(path): errno \(errno)")
    }
    fputs(text, file)
    fclose(file)
}

func writeBytes(_ path: String, _ bytes: [UInt8]) {
    guard let file = fopen(path, "wb") else { fatalError("cannot write \(path): errno \(errno)") }
    _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
    fclose(file)
}

func makeDirectories(_ path: String) {
    var current = path.hasPrefix("/") ? "" : "."
    for component in path.split(separator: "/") {
        current += "/" + component
        mkdir(current, 0o755)
    }
}

/// `--name value` options and bare flags.
struct Options {
    private var values: [String: String] = [:]
    private var flags: Set<String> = []

    init(_ arguments: ArraySlice<String>) {
        var index = arguments.startIndex
        while index < arguments.endIndex {
            let argument = arguments[index]
            guard argument.hasPrefix("--") else {
                fail("unexpected argument '\(argument)'")
            }
            let name = String(argument.dropFirst(2))
            if let equals = name.firstIndex(of: "=") {
                values[String(name[..<equals])] = String(name[name.index(after: equals)...])
            } else if index + 1 < arguments.endIndex, !arguments[index + 1].hasPrefix("--") {
                values[name] = arguments[index + 1]
                index += 1
            } else {
                flags.insert(name)
            }
            index += 1
        }
    }

    func string(_ name: String, default fallback: String) -> String { values[name] ?? fallback }
    func optionalString(_ name: String) -> String? { values[name] }

    func int(_ name: String, default fallback: Int) -> Int {
        guard let text = values[name] else { return fallback }
        guard let value = Int(text) else { fail("--\(name) needs a whole number, got '\(text)'") }
        return value
    }

    func double(_ name: String, default fallback: Double) -> Double {
        guard let text = values[name] else { return fallback }
        guard let value = Double(text) else { fail("--\(name) needs a number, got '\(text)'") }
        return value
    }

    func flag(_ name: String) -> Bool { flags.contains(name) }

    /// "1280x720" → (1280, 720).
    func size(_ name: String, default fallback: (Int, Int)) -> (width: Int, height: Int) {
        guard let text = values[name] else { return fallback }
        let parts = text.split(separator: "x")
        guard parts.count == 2, let width = Int(parts[0]), let height = Int(parts[1]) else {
            fail("--\(name) needs WIDTHxHEIGHT, got '\(text)'")
        }
        return (width, height)
    }
}

func fail(_ message: String) -> Never {
    writeStandardError("rtcam-bench: \(message)\n")
    exit(2)
}

func writeStandardError(_ text: String) {
    var bytes = Array(text.utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
}

/// Flushes stdout (the orchestrator waits for READY/DONE lines on a pipe).
func flushOutput() { fflush(nil) }
