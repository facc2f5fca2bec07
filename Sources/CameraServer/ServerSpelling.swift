/// How the STUN and TURN servers are spelled in the settings and on the command line (`--stun`,
/// `--turn`): parsed without resolving anything, so validating the settings needs no network.
enum STUNServerSpelling {
    /// "host:port", "192.0.2.1:3478" or "[2001:db8::1]:3478".
    static func hostAndPort(_ text: String) -> (host: String, port: UInt16)? {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]), port > 0 else { return nil }
        var host = text[..<colon]
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        guard !host.isEmpty else { return nil }
        return (String(host), port)
    }
}

/// The spelling of a TURN server (RFC 7065 §3.1): `turn:HOST[:PORT]` (3478) with an optional
/// `?transport=udp` or `?transport=tcp`, or `turns:HOST[:PORT]` (TLS over TCP, 5349; 443 where a
/// network lets only HTTPS out). The relay toward peers is UDP in every case (RFC 8656 §3.1).
enum TURNServerSpelling {
    /// How rtcam reaches the server.
    enum Transport: String, Equatable, Sendable {
        case udp, tcp, tls
    }

    struct Parsed: Equatable {
        var host: String
        var port: UInt16
        var transport: Transport = .udp
    }

    enum Problem: Error, Equatable, CustomStringConvertible {
        case malformed(String)
        case unsupported(String)

        var description: String {
            switch self {
            case let .malformed(text): return "--turn wants turn:HOST[:PORT][?transport=udp|tcp] or turns:HOST[:PORT]: \(text)"
            case let .unsupported(text): return "\(text): turns: is TLS over TCP (no ?transport=udp, DTLS to the server is not done)"
            }
        }
    }

    static func parse(_ text: String) throws(Problem) -> Parsed {
        var rest = Substring(text)
        var transport = Transport.udp
        var port: UInt16 = 3478
        if rest.lowercased().hasPrefix("turns:") {
            transport = .tls
            port = 5349
            rest = rest.dropFirst(6)
        } else if rest.lowercased().hasPrefix("turn:") {
            rest = rest.dropFirst(5)
        } else {
            throw .malformed(text)
        }
        if let question = rest.firstIndex(of: "?") {
            let query = rest[rest.index(after: question)...].lowercased()
            switch (query, transport) {
            case ("transport=udp", .udp): break
            case ("transport=tcp", .udp): transport = .tcp
            case ("transport=tcp", .tls): break
            case ("transport=udp", .tls): throw .unsupported(text)
            default: throw .malformed(text)
            }
            rest = rest[..<question]
        }
        var host = rest
        if rest.hasPrefix("[") {
            // [IPv6]:port or [IPv6]
            guard let close = rest.firstIndex(of: "]") else { throw .malformed(text) }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let value = UInt16(after.dropFirst()), value > 0 else { throw .malformed(text) }
                port = value
            }
        } else if let colon = rest.lastIndex(of: ":") {
            guard rest.firstIndex(of: ":") == colon, let value = UInt16(rest[rest.index(after: colon)...]), value > 0 else {
                throw .malformed(text)
            }
            host = rest[..<colon]
            port = value
        }
        guard !host.isEmpty, !host.contains(where: { $0 == " " || $0 == "/" || $0 == "@" }) else { throw .malformed(text) }
        return Parsed(host: String(host), port: port, transport: transport)
    }
}
