/// The Prometheus text exposition format 0.0.4 (prometheus.io/docs/instrumenting/exposition_formats):
/// `# HELP`, `# TYPE`, then one `name{label="value",...} number` line per sample. A handful of
/// lines written here instead of a metrics library (swift-prometheus would add its registry, locks
/// and Foundation-free but sizeable code to a daemon whose idle RSS is ~11.5 MB: README, Performance).
public struct PrometheusText {
    public enum Kind: String { case counter, gauge }

    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public private(set) var text = ""
    private var declared: Set<String> = []

    public init() {}

    /// Declares a metric family once (HELP and TYPE); samples follow with `sample`.
    public mutating func family(_ name: String, _ kind: Kind, help: String) {
        guard declared.insert(name).inserted else { return }
        text += "# HELP \(name) \(Self.escapeHelp(help))\n# TYPE \(name) \(kind.rawValue)\n"
    }

    public mutating func sample(_ name: String, _ labels: [(String, String)] = [], _ value: Double) {
        text += name
        if !labels.isEmpty {
            text += "{"
            text += labels.map { "\($0.0)=\"\(Self.escapeLabel($0.1))\"" }.joined(separator: ",")
            text += "}"
        }
        text += " \(Self.format(value))\n"
    }

    public mutating func sample(_ name: String, _ labels: [(String, String)] = [], _ value: Int) {
        sample(name, labels, Double(value))
    }

    /// A family with one sample (the common case).
    public mutating func metric(_ name: String, _ kind: Kind, help: String, _ value: Double) {
        family(name, kind, help: help)
        sample(name, [], value)
    }

    public mutating func metric(_ name: String, _ kind: Kind, help: String, _ value: Int) {
        metric(name, kind, help: help, Double(value))
    }

    /// Go's strconv-style float text Prometheus reads: integers without a fraction, NaN, +Inf, -Inf.
    static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    /// Label values: backslash, double quote and line feed escaped.
    static func escapeLabel(_ value: String) -> String {
        var out = ""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }

    /// HELP text: backslash and line feed escaped.
    static func escapeHelp(_ value: String) -> String {
        var out = ""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }
}
