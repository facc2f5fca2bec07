/// A small command-line grammar: subcommands that take `--name VALUE` / `--name=VALUE` options, help
/// generated from the same table that drives the parsing.
///
/// rtcam's own instead of swift-argument-parser: that package (1.8) imports FoundationEssentials,
/// which with _FoundationCollections, _RegexParser and _StringProcessing put 5.8 MB into the 18.8 MB
/// stripped daemon for two subcommands and a dozen options (DESIGN.md, "Footprint").

/// One `--name VALUE` option.
public struct OptionDefinition: Sendable {
    /// The long name without its dashes, e.g. `http-port`.
    public let name: String
    /// What the value is, for the usage line: `--http-port <port>`.
    public let valueName: String
    public let help: String
    /// Shown as "(default: …)" after the help; nil when the default depends on saved settings.
    public let defaultValue: String?
    /// Given more than once, every value is kept (`--candidate-address A --candidate-address B`);
    /// otherwise the last one wins, so options appended later (systemd's $RTCAM_OPTIONS) override.
    public let repeatable: Bool

    public init(_ name: String, value valueName: String, help: String, default defaultValue: String? = nil,
                repeatable: Bool = false) {
        self.name = name
        self.valueName = valueName
        self.help = help
        self.defaultValue = defaultValue
        self.repeatable = repeatable
    }
}

public struct SubcommandDefinition: Sendable {
    public let name: String
    public let abstract: String
    public let options: [OptionDefinition]

    public init(_ name: String, abstract: String, options: [OptionDefinition] = []) {
        self.name = name
        self.abstract = abstract
        self.options = options
    }

    func option(named name: String) -> OptionDefinition? { options.first { $0.name == name } }
}

/// The options one subcommand was given, by long name, in the order given.
public struct ParsedOptions: Sendable, Equatable {
    public private(set) var values: [String: [String]] = [:]

    public init() {}

    mutating func add(_ value: String, for option: OptionDefinition) {
        if option.repeatable {
            values[option.name, default: []].append(value)
        } else {
            values[option.name] = [value]
        }
    }

    /// The value of a single-valued option, or nil when it was not given.
    public func value(_ name: String) -> String? { values[name]?.last }

    /// Every value of a repeatable option.
    public func all(_ name: String) -> [String] { values[name] ?? [] }
}

public enum CommandLineError: Error, Equatable, CustomStringConvertible {
    case unknownSubcommand(String)
    case unknownOption(String)
    case missingValue(option: String)
    case unexpectedArgument(String)
    case invalidValue(option: String, reason: String)

    public var description: String {
        switch self {
        case let .unknownSubcommand(name): return "unknown subcommand '\(name)'"
        case let .unknownOption(option): return "unknown option '\(option)'"
        case let .missingValue(option): return "missing value for '--\(option)'"
        case let .unexpectedArgument(argument): return "unexpected argument '\(argument)'"
        case let .invalidValue(_, reason): return reason
        }
    }
}

/// What one subcommand's arguments came to.
public enum SubcommandArguments: Equatable, Sendable {
    case options(ParsedOptions)
    case helpRequested
}

extension SubcommandDefinition {
    /// Parses the arguments after the subcommand's name. `-h`/`--help` anywhere asks for help.
    public func parse(_ arguments: some Collection<String>) throws(CommandLineError) -> SubcommandArguments {
        // Help wins over anything wrong beside it: `rtcam serve --frames 30 --help` shows the options.
        if arguments.contains(where: { $0 == "-h" || $0 == "--help" }) { return .helpRequested }
        var parsed = ParsedOptions()
        var iterator = arguments.makeIterator()
        while let argument = iterator.next() {
            guard argument.hasPrefix("--"), argument.count > 2 else {
                throw argument.hasPrefix("-") ? .unknownOption(argument) : .unexpectedArgument(argument)
            }
            let body = argument.dropFirst(2)
            let name: Substring
            let inlineValue: Substring?
            if let equals = body.firstIndex(of: "=") {
                name = body[..<equals]
                inlineValue = body[body.index(after: equals)...]
            } else {
                name = body
                inlineValue = nil
            }
            guard let option = option(named: String(name)) else { throw .unknownOption("--" + name) }
            if let inlineValue {
                parsed.add(String(inlineValue), for: option)
                continue
            }
            switch iterator.next() {
            case let next? where !next.hasPrefix("--"):
                parsed.add(next, for: option)
            default:
                throw .missingValue(option: option.name)
            }
        }
        return .options(parsed)
    }

    /// `rtcam serve --help`.
    public func helpText(commandName: String, width: Int = 80) -> String {
        var lines = overviewLines(abstract, width: width)
        lines.append("")
        let usageOptions = options.map { "[--\($0.name) <\($0.valueName)>\($0.repeatable ? " ..." : "")]" }
        lines += wrapped(["USAGE:", commandName, name] + usageOptions, width: width, continuation: "       ")
        lines.append("")
        lines.append("OPTIONS:")
        let entries = options.map { option -> (String, String) in
            let help = option.defaultValue.map { option.help + " (default: \($0))" } ?? option.help
            return ("--\(option.name) <\(option.valueName)>", help)
        } + [("-h, --help", "Show help information.")]
        lines += twoColumns(entries, width: width)
        return lines.joined(separator: "\n")
    }
}

/// "OVERVIEW: …" wrapped to `width`.
func overviewLines(_ abstract: String, width: Int) -> [String] {
    wrapped(["OVERVIEW:"] + abstract.split(separator: " ").map(String.init), width: width, continuation: "  ")
}

/// Lines of at most `width` columns (a longer word stays whole), later lines indented.
func wrapped(_ words: [String], width: Int, continuation: String) -> [String] {
    var lines: [String] = []
    var line = ""
    for word in words {
        if line.isEmpty {
            line = (lines.isEmpty ? "" : continuation) + word
        } else if line.count + 1 + word.count <= width {
            line += " " + word
        } else {
            lines.append(line)
            line = continuation + word
        }
    }
    if !line.isEmpty { lines.append(line) }
    return lines
}

/// "  name    text" with the text wrapped in its own column; a name too wide for the column gets the
/// text on the lines below it.
func twoColumns(_ entries: [(String, String)], width: Int) -> [String] {
    let column = min(30, (entries.map(\.0.count).max() ?? 0) + 4)
    let indent = String(repeating: " ", count: column)
    var lines: [String] = []
    for (name, text) in entries {
        let words = text.split(separator: " ").map(String.init)
        var body = wrapped(words, width: width - column, continuation: "")
        let head = "  " + name
        if head.count + 2 <= column, !body.isEmpty {
            body[0] = head + String(repeating: " ", count: column - head.count) + body[0]
            lines.append(body[0])
            lines += body.dropFirst().map { indent + $0 }
        } else {
            lines.append(head)
            lines += body.map { indent + $0 }
        }
    }
    return lines
}
