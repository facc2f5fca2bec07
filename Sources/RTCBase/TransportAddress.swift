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
        // IPv6: up to 8 groups with at most one "::".
        let halves = host.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ s: Substring) -> [UInt16]? {
            if s.isEmpty { return [] }
            var out: [UInt16] = []
            for g in s.split(separator: ":", omittingEmptySubsequences: false) {
                guard !g.isEmpty, g.count <= 4, let v = UInt16(g, radix: 16) else { return nil }
                out.append(v)
            }
            return out
        }
        guard let head = groups(halves[0]) else { return nil }
        var all = head
        if halves.count == 2 {
            guard let tail = groups(halves[1]), head.count + tail.count < 8 else { return nil }
            all += Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        guard all.count == 8 else { return nil }
        self = .v6(all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] })
    }

    public var isLoopback: Bool {
        switch self {
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
            var groups: [String] = []
            for i in stride(from: 0, to: 16, by: 2) {
                groups.append(String(UInt16(b[i]) << 8 | UInt16(b[i + 1]), radix: 16))
            }
            return groups.joined(separator: ":")
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
