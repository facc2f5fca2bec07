import RTCBase

/// One UDP candidate of component 1 (RFC 8445 §5.1): where it is, what kind, its priority and
/// foundation, and for a reflexive one the address it was learned from (its base, §5.1.1.2).
public struct ICECandidate: Hashable, Sendable, CustomStringConvertible {
    /// RFC 8445 §5.1.1: the candidate types, spelled as in SDP (RFC 8839 §5.1 cand-type).
    public enum Kind: String, Hashable, Sendable {
        case host
        case serverReflexive = "srflx"
        case peerReflexive = "prflx"
        case relayed = "relay"

        /// RFC 8445 §5.1.2.2: the recommended type preferences.
        public var typePreference: UInt32 {
            switch self {
            case .host: return 126
            case .peerReflexive: return 110
            case .serverReflexive: return 100
            case .relayed: return 0
            }
        }
    }

    public var address: TransportAddress
    public var kind: Kind
    public var priority: UInt32
    public var foundation: String
    /// A reflexive candidate's base (SDP raddr/rport); nil for host candidates.
    public var relatedAddress: TransportAddress?

    public init(address: TransportAddress, kind: Kind, priority: UInt32, foundation: String,
                relatedAddress: TransportAddress? = nil) {
        self.address = address
        self.kind = kind
        self.priority = priority
        self.foundation = foundation
        self.relatedAddress = relatedAddress
    }

    /// A candidate with the RFC 8445 §5.1.2.1 priority for its kind and local preference.
    public init(address: TransportAddress, kind: Kind, localPreference: UInt16, foundation: String,
                relatedAddress: TransportAddress? = nil) {
        self.init(address: address, kind: kind, priority: Self.priority(kind: kind, localPreference: localPreference),
                  foundation: foundation, relatedAddress: relatedAddress)
    }

    /// RFC 8445 §5.1.2.1: (2^24)·type preference + (2^8)·local preference + (256 − component ID).
    public static func priority(kind: Kind, localPreference: UInt16, component: UInt32 = 1) -> UInt32 {
        (1 << 24) * kind.typePreference + (1 << 8) * UInt32(localPreference) + (256 - component)
    }

    /// The local preference inside a priority (its middle 16 bits).
    var localPreference: UInt16 { UInt16(truncatingIfNeeded: priority >> 8) }

    /// The a=candidate value (RFC 8839 §5.1): "<foundation> 1 udp <priority> <address> <port> typ <type>
    /// [raddr <address> rport <port>]".
    public var sdpValue: String {
        var value = "\(foundation) 1 udp \(priority) \(address.ip) \(address.port) typ \(kind.rawValue)"
        if let relatedAddress { value += " raddr \(relatedAddress.ip) rport \(relatedAddress.port)" }
        return value
    }

    public var description: String { "\(kind.rawValue) \(address)" }

    /// Where datagrams of this candidate really leave from: the relay for a relayed candidate, the
    /// socket for the others (a reflexive candidate's base is the socket, RFC 8445 §5.1.1.2).
    public var base: TransportPath.LocalBase { kind == .relayed ? .relay : .host }

    /// What an a=candidate value (RFC 8839 §5.1) names, for component 1 over UDP.
    public enum Parsed: Equatable, Sendable {
        case candidate(ICECandidate)
        /// An mDNS name (draft-ietf-mmusic-mdns-ice-candidates §3.1: "<uuid>.local") instead of an
        /// address: usable once resolved (RFC 6762).
        case multicastDNSName(String, port: UInt16, kind: Kind, priority: UInt32, foundation: String)
        /// Another component, TCP, an unknown type, or not a candidate at all.
        case unusable(reason: String)
    }

    /// Parses an a=candidate value (the text after "a=candidate:"; a leading "candidate:", as in a
    /// trickled JSON candidate, is allowed too). Extension attributes after the type are passed over.
    public static func parse(sdpValue text: String) -> Parsed {
        var fields = text.split(separator: " ", omittingEmptySubsequences: true)
        if let first = fields.first, first.hasPrefix("candidate:") {
            fields[0] = first.dropFirst("candidate:".count)
        }
        guard fields.count >= 8, fields[6] == "typ" else { return .unusable(reason: "not a candidate: \(text)") }
        let foundation = String(fields[0])
        guard fields[1] == "1" else { return .unusable(reason: "component \(fields[1]) (rtcam muxes RTP and RTCP)") }
        guard fields[2].lowercased() == "udp" else { return .unusable(reason: "transport \(fields[2])") }
        guard let priority = UInt32(fields[3]), priority > 0 else { return .unusable(reason: "priority \(fields[3])") }
        guard let port = UInt16(fields[5]), port > 0 else { return .unusable(reason: "port \(fields[5])") }
        guard let kind = Kind(rawValue: String(fields[7])) else { return .unusable(reason: "type \(fields[7])") }
        var relatedIP: TransportAddress.IP?, relatedPort: UInt16?
        var index = 8
        while index + 1 < fields.count {
            if fields[index] == "raddr" { relatedIP = TransportAddress.IP(parsing: String(fields[index + 1])) }
            if fields[index] == "rport" { relatedPort = UInt16(fields[index + 1]) }
            index += 2
        }
        let related = relatedIP.flatMap { ip in relatedPort.map { TransportAddress(ip: ip, port: $0) } }
        let host = String(fields[4])
        guard let ip = TransportAddress.IP(parsing: host) else {
            if host.lowercased().hasSuffix(".local"), host.count > 6 {
                return .multicastDNSName(host, port: port, kind: kind, priority: priority, foundation: foundation)
            }
            return .unusable(reason: "address \(host)")
        }
        return .candidate(ICECandidate(address: TransportAddress(ip: ip, port: port), kind: kind, priority: priority,
                                       foundation: foundation, relatedAddress: related))
    }
}

extension TransportAddress.IP {
    /// Whether both are IPv4 or both IPv6 (RFC 8445 §6.1.2.2: only such candidates are paired).
    func isSameFamily(as other: TransportAddress.IP) -> Bool {
        switch (self, other) {
        case (.v4, .v4), (.v6, .v6): return true
        default: return false
        }
    }
}
