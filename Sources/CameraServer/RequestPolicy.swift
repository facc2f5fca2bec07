import NIOHTTP1
import RTCBase

#if canImport(Glibc)
import Glibc
#endif

/// The checks every request passes before routing (issue 16), pure so they are tested alone.
///
/// - DNS rebinding: a page on an attacker's domain whose name is made to resolve to the camera sends
///   `Host: attacker.example`. Only names the camera answers to are accepted: its host name
///   (gethostname), `<hostname>.local` (mDNS), `localhost`, names given in the configuration, and any
///   literal IP address (a literal cannot be rebound, so accepting every one costs nothing and keeps
///   port forwards and NAT working). Anything else gets 421 Misdirected Request (RFC 9110 §15.5.20).
/// - Cross-site writes: a state-changing request (POST, PUT, PATCH, DELETE) whose `Origin` is present
///   and is not this very origin (scheme, host and port of the request) gets 403, except WHEP with a
///   valid Bearer token (third-party players live on other origins).
/// - Once HTTPS is on, whatever sets or needs the session cookie (/settings and /api/*) is HTTPS-only:
///   on plain HTTP it answers 308 to the same host name on the HTTPS port.
struct RequestPolicy: Sendable {
    /// Lowercased names (without port) accepted in `Host`, besides literal IP addresses.
    var hostNames: Set<String>
    /// nil: HTTPS is off.
    var httpsPort: Int?

    init(hostName: String?, extraNames: [String] = [], httpsPort: Int? = nil) {
        var names: Set<String> = ["localhost", "localhost.localdomain"]
        if let hostName = hostName?.lowercased(), !hostName.isEmpty {
            names.insert(hostName)
            let short = hostName.split(separator: ".").first.map(String.init) ?? hostName
            names.insert(short)
            names.insert(short + ".local")
        }
        for name in extraNames where !name.isEmpty { names.insert(Self.withoutTrailingDot(name.lowercased())) }
        hostNames = names
        self.httpsPort = httpsPort
    }

    enum Decision: Equatable {
        case proceed
        case refuse(HTTPResponseStatus, String)
        case redirect(location: String)
    }

    /// `hasValidBearerToken`: the request carries a viewing token the camera knows.
    func decide(method: HTTPMethod, path: String, query: Substring, host: String?, origin: String?,
                isSecureTransport: Bool, hasValidBearerToken: Bool) -> Decision {
        // No Host at all: not a browser (HTTP/1.0 tools); rebinding needs a browser, which always sends one.
        let hostName: String?
        if let host {
            guard let parsed = Self.split(host: host), isAccepted(hostName: parsed.name) else {
                return .refuse(.misdirectedRequest,
                               "this camera does not answer to the name '\(Self.printable(host))' (DNS rebinding protection): use its IP address, its host name or <host name>.local")
            }
            hostName = parsed.name
        } else {
            hostName = nil
        }
        if Self.changesState(method), let origin, !(hasValidBearerToken && Self.isWHEP(path)) {
            let scheme = isSecureTransport ? "https" : "http"
            guard let host, Self.sameOrigin(origin: origin, scheme: scheme, host: host) else {
                return .refuse(.forbidden, "cross-origin request refused: Origin \(Self.printable(origin)) is not this camera's page")
            }
        }
        if let httpsPort, !isSecureTransport, Self.needsHTTPS(path) {
            guard let hostName else { return .refuse(.forbidden, "this page is served over HTTPS only (port \(httpsPort))") }
            let bracketed = hostName.contains(where: { $0 == ":" }) ? "[\(hostName)]" : hostName
            return .redirect(location: "https://\(bracketed):\(httpsPort)\(path)\(query.isEmpty ? "" : "?" + query)")
        }
        return .proceed
    }

    /// gethostname(2), or nil.
    static func machineHostName() -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return nil }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? nil : name
    }

    func isAccepted(hostName: String) -> Bool {
        if TransportAddressText.isLiteralIP(hostName) { return true }
        return hostNames.contains(Self.withoutTrailingDot(hostName.lowercased()))
    }

    static func changesState(_ method: HTTPMethod) -> Bool {
        method == .POST || method == .PUT || method == .PATCH || method == .DELETE
    }

    static func isWHEP(_ path: String) -> Bool { path == "/whep" || path.hasPrefix("/whep/") }

    /// What sets or needs the session cookie: the settings page and the JSON API.
    static func needsHTTPS(_ path: String) -> Bool { path == "/settings" || path.hasPrefix("/api/") }

    /// "name", "name:port", "[v6]", "[v6]:port" → the name (lowercased, brackets off) and the port.
    static func split(host: String) -> (name: String, port: Int?)? {
        let text = host.trimmingSpaces.lowercased()
        guard !text.isEmpty, text.utf8.count <= 255 else { return nil }
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            let name = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            if rest.isEmpty { return (name, nil) }
            guard rest.hasPrefix(":"), let port = Int(rest.dropFirst()), (0...65535).contains(port) else { return nil }
            return (name, port)
        }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        switch parts.count {
        case 1: return (text, nil)
        case 2:
            guard let port = Int(parts[1]), (0...65535).contains(port), !parts[0].isEmpty else { return nil }
            return (String(parts[0]), port)
        default:
            return nil  // an IPv6 literal must be bracketed in Host (RFC 9110 §7.2, RFC 3986 §3.2.2)
        }
    }

    /// Whether `origin` ("scheme://host[:port]") is the request's own origin: same scheme, host, port
    /// (a missing port is the scheme's default). "null" is never the same.
    static func sameOrigin(origin: String, scheme: String, host: String) -> Bool {
        let text = origin.trimmingSpaces.lowercased()
        guard text.hasPrefix(scheme + "://") else { return false }
        guard let theirs = split(host: String(text.dropFirst(scheme.count + 3))),
              let ours = split(host: host) else { return false }
        let defaultPort = scheme == "https" ? 443 : 80
        // Two spellings of one IPv6 literal ("[2001:db8::1]", "[2001:DB8:0::1]") are the same host.
        let sameHost: Bool
        if theirs.name.contains(":"), let theirIP = TransportAddress.IP(parsing: theirs.name),
           let ourIP = TransportAddress.IP(parsing: ours.name) {
            sameHost = theirIP == ourIP
        } else {
            sameHost = Self.withoutTrailingDot(theirs.name) == Self.withoutTrailingDot(ours.name)
        }
        return sameHost && (theirs.port ?? defaultPort) == (ours.port ?? defaultPort)
    }

    static func withoutTrailingDot(_ name: String) -> String {
        name.hasSuffix(".") ? String(name.dropLast()) : name
    }

    /// A header value as it may appear in an error message: printable ASCII, at most 100 characters.
    static func printable(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.prefix(100).map { (0x20..<0x7F).contains($0.value) ? $0 : "?" }))
    }
}

/// Literal IP addresses in a Host header.
enum TransportAddressText {
    static func isLiteralIP(_ text: String) -> Bool { isIPv4(text) || isIPv6(text) }

    static func isIPv4(_ text: String) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return false }
        return parts.allSatisfy { part in
            !part.isEmpty && part.count <= 3 && part.allSatisfy(\.isASCIIDigit) && Int(part).map { $0 <= 255 } == true
        }
    }

    /// An IPv6 address (RFC 4291 §2.2), with an optional zone; hex groups, "::", a dotted IPv4 tail.
    static func isIPv6(_ text: String) -> Bool {
        var address = Substring(text)
        if let percent = address.firstIndex(of: "%") { address = address[..<percent] }
        guard address.contains(where: { $0 == ":" }), address.count <= 45 else { return false }
        let doubleColons = address.pieceCount(separatedBy: "::")
        guard doubleColons <= 2 else { return false }
        var groups = address.split(separator: ":", omittingEmptySubsequences: true)
        var count = 0
        if let last = groups.last, last.contains(where: { $0 == "." }) {
            guard isIPv4(String(last)) else { return false }
            groups.removeLast()
            count += 2
        }
        for group in groups {
            guard (1...4).contains(group.count), group.allSatisfy(\.isHexDigit) else { return false }
            count += 1
        }
        return doubleColons == 2 ? count < 8 : count == 8
    }
}

private extension Substring {
    /// How many pieces `separator` cuts it into (standard library only: README, "Facts measured here").
    func pieceCount(separatedBy separator: String) -> Int {
        let bytes = Array(utf8)
        let pattern = Array(separator.utf8)
        var pieces = 1
        var index = 0
        while index + pattern.count <= bytes.count {
            if bytes[index..<(index + pattern.count)].elementsEqual(pattern) {
                pieces += 1
                index += pattern.count
            } else {
                index += 1
            }
        }
        return pieces
    }
}

private extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
