/// An IPv4 or IPv6 address and UDP port, as raw bytes (no sockaddr, no Foundation).
public struct TransportAddress: Hashable, Sendable, CustomStringConvertible {
    public enum IP: Hashable, Sendable {
        case v4(UInt8, UInt8, UInt8, UInt8)
        case v6([UInt8])  // 16 bytes
    }

    public var ip: IP
    public var port: UInt16

    public init(ip: IP, port: UInt16) {
        self.ip = ip
        self.port = port
    }

    /// Parses "a.b.c.d" or an IPv6 literal (with optional brackets) and a port.
    public init?(host: String, port: UInt16) {
        guard let ip = IP(parsing: host) else { return nil }
        self.init(ip: ip, port: port)
    }

    public var description: String {
        switch ip {
        case .v4: return "\(ip):\(port)"
        case .v6: return "[\(ip)]:\(port)"
        }
    }
}

extension TransportAddress.IP: CustomStringConvertible {
    public init?(parsing text: String) {
        var host = Substring(text)
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        if !host.contains(":") {
            let parts = host.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 4 else { return nil }
            var octets: [UInt8] = []
            for part in parts {
                guard !part.isEmpty, part.count <= 3, let value = UInt8(part) else { return nil }
                octets.append(value)
            }
            self = .v4(octets[0], octets[1], octets[2], octets[3])
            return
        }
        // IPv6: up to 8 groups with at most one "::"; the last 32 bits may be dotted IPv4
        // (RFC 4291 §2.2, "::ffff:192.0.2.1").
        let halves = host.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ s: Substring, isLast: Bool) -> [UInt16]? {
            if s.isEmpty { return [] }
            var out: [UInt16] = []
            let pieces = s.split(separator: ":", omittingEmptySubsequences: false)
            for (index, g) in pieces.enumerated() {
                if isLast, index == pieces.count - 1, g.contains(".") {
                    guard case let .v4(a, b, c, d)? = Self(parsing: String(g)) else { return nil }
                    out += [UInt16(a) << 8 | UInt16(b), UInt16(c) << 8 | UInt16(d)]
                    continue
                }
                guard !g.isEmpty, g.count <= 4, let v = UInt16(g, radix: 16) else { return nil }
                out.append(v)
            }
            return out
        }
        guard let head = groups(halves[0], isLast: halves.count == 1) else { return nil }
        var all = head
        if halves.count == 2 {
            guard let tail = groups(halves[1], isLast: true), head.count + tail.count < 8 else { return nil }
            all += Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        guard all.count == 8 else { return nil }
        self = .v6(all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] })
    }

    /// An IPv4 address as a dual-stack socket spells it: ::ffff:a.b.c.d (RFC 4291 §2.5.5.2).
    public var ipv4Mapped: TransportAddress.IP {
        switch self {
        case let .v4(a, b, c, d): return .v6(Array(repeating: 0, count: 10) + [0xFF, 0xFF, a, b, c, d])
        case .v6: return self
        }
    }

    /// A v4-mapped IPv6 address as the plain IPv4 one it names; any other address unchanged. What a
    /// dual-stack socket reports for an IPv4 peer goes through this, so nothing past the socket ever
    /// sees ::ffff:.
    public var unmappingIPv4: TransportAddress.IP {
        guard case let .v6(bytes) = self, bytes.count == 16, bytes[10] == 0xFF, bytes[11] == 0xFF,
              bytes[0 ..< 10].allSatisfy({ $0 == 0 }) else { return self }
        return .v4(bytes[12], bytes[13], bytes[14], bytes[15])
    }

    /// What one host can hold of the address space, for limits that count per host: an IPv4 address
    /// itself (v4-mapped IPv6 as IPv4), an IPv6 address's /64. A single IPv6 host forms as many
    /// addresses in its /64 as it likes (RFC 8981 temporary addresses, RFC 7217), so a cap per
    /// IPv6 address would be a cap on nothing.
    public var hostLimitKey: TransportAddress.IP {
        switch unmappingIPv4 {
        case let .v6(bytes) where bytes.count == 16:
            return .v6(Array(bytes[0 ..< 8]) + [UInt8](repeating: 0, count: 8))
        case let other:
            return other
        }
    }

    /// fe80::/10: usable only with an interface scope, which one unscoped socket cannot give.
    public var isIPv6LinkLocal: Bool {
        guard case let .v6(bytes) = self, bytes.count == 16 else { return false }
        return bytes[0] == 0xFE && bytes[1] & 0xC0 == 0x80
    }

    /// An address no router on the internet forwards to (RFC 1918, RFC 6598 shared address space,
    /// link-local RFC 3927 / RFC 4291, unique-local RFC 4193, loopback): a relay on a public
    /// address cannot reach it.
    public var isPrivate: Bool {
        switch unmappingIPv4 {
        case let .v4(a, b, _, _):
            return a == 10 || (a == 172 && b & 0xF0 == 16) || (a == 192 && b == 168) || (a == 100 && b & 0xC0 == 64)
                || (a == 169 && b == 254) || a == 127
        case let .v6(bytes):
            guard bytes.count == 16 else { return false }
            return bytes[0] & 0xFE == 0xFC || isIPv6LinkLocal || isLoopback
        }
    }

    public var isIPv6: Bool {
        if case .v6 = self { return true }
        return false
    }

    /// 127.0.0.0/8, ::1, and ::ffff:127.0.0.0/104 (IPv4 loopback through a dual-stack socket).
    public var isLoopback: Bool {
        switch unmappingIPv4 {
        case let .v4(a, _, _, _): return a == 127
        case let .v6(b): return b == Array(repeating: 0, count: 15) + [1]
        }
    }

    public var bytes: [UInt8] {
        switch self {
        case let .v4(a, b, c, d): return [a, b, c, d]
        case let .v6(b): return b
        }
    }

    public var description: String {
        switch self {
        case let .v4(a, b, c, d): return "\(a).\(b).\(c).\(d)"
        case let .v6(b):
            guard b.count == 16 else { return "invalid-v6" }
            // RFC 5952 §4: lowercase hex without leading zeros, the longest run of two or more zero
            // groups (the first of equals) as "::".
            let groups = stride(from: 0, to: 16, by: 2).map { UInt16(b[$0]) << 8 | UInt16(b[$0 + 1]) }
            var bestStart = -1, bestLength = 1, runStart = -1
            for index in 0 ... 8 {
                if index < 8, groups[index] == 0 {
                    if runStart < 0 { runStart = index }
                } else if runStart >= 0 {
                    if index - runStart > bestLength { bestStart = runStart; bestLength = index - runStart }
                    runStart = -1
                }
            }
            func text(_ range: Range<Int>) -> String { groups[range].map { String($0, radix: 16) }.joined(separator: ":") }
            guard bestStart >= 0 else { return text(0 ..< 8) }
            return text(0 ..< bestStart) + "::" + text(bestStart + bestLength ..< 8)
        }
    }
}

extension Substring {
    /// Split at every occurrence of `separator`. Written with the standard library alone: the
    /// obvious `firstRange(of:)` lives in _StringProcessing, and this one call linked that module and
    /// _RegexParser (1.26 MB) into rtcam (README.md, "Facts measured here").
    func components(separatedBy separator: String) -> [Substring] {
        precondition(!separator.isEmpty)
        var result: [Substring] = []
        var pieceStart = startIndex
        var index = startIndex
        while index < endIndex {
            if self[index...].hasPrefix(separator) {
                result.append(self[pieceStart..<index])
                index = self.index(index, offsetBy: separator.count)
                pieceStart = index
            } else {
                index = self.index(after: index)
            }
        }
        result.append(self[pieceStart...])
        return result
    }
}
