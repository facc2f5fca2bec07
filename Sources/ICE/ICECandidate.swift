import RTCBase

/// One candidate of component 1 (RFC 8445 §5.1): where it is, what kind, its priority and
/// foundation, for a reflexive one the address it was learned from (its base, §5.1.1.2), and for a
/// TCP candidate (ICE-TCP, RFC 6544) which way its connections are opened.
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

        /// The type preferences of TCP candidates (ICECandidate.tcpPriority): below UDP's
        /// server-reflexive 100, in the same order as UDP's.
        public var tcpTypePreference: UInt32 {
            switch self {
            case .host: return 90
            case .peerReflexive: return 80
            case .serverReflexive: return 70
            case .relayed: return 0
            }
        }
    }

    /// RFC 6544 §4.5 (SDP "tcptype"): who opens a TCP candidate's connections.
    public enum TCPType: String, Hashable, Sendable {
        /// Opens connections and accepts none (its port is 9, the discard port, RFC 6544 §4.5).
        case active
        /// Accepts connections and opens none: rtcam's one listening port.
        case passive
        /// TCP simultaneous open: both sides connect at once.
        case simultaneousOpen = "so"

        /// RFC 6544 §4.2, table for a host that is not behind a NAT (rtcam's listening port is
        /// reached directly or through a forwarded port): active 6, passive 4, simultaneous-open 2.
        public var directionPreference: UInt16 {
            switch self {
            case .active: 6
            case .passive: 4
            case .simultaneousOpen: 2
            }
        }
    }

    public var address: TransportAddress
    public var kind: Kind
    public var priority: UInt32
    public var foundation: String
    /// A reflexive candidate's base (SDP raddr/rport); nil for host candidates.
    public var relatedAddress: TransportAddress?
    /// nil: a UDP candidate; else a TCP one of this type.
    public var tcpType: TCPType?

    public init(address: TransportAddress, kind: Kind, priority: UInt32, foundation: String,
                relatedAddress: TransportAddress? = nil, tcpType: TCPType? = nil) {
        self.address = address
        self.kind = kind
        self.priority = priority
        self.foundation = foundation
        self.relatedAddress = relatedAddress
        self.tcpType = tcpType
    }

    /// A UDP candidate with the RFC 8445 §5.1.2.1 priority for its kind and local preference.
    public init(address: TransportAddress, kind: Kind, localPreference: UInt16, foundation: String,
                relatedAddress: TransportAddress? = nil) {
        self.init(address: address, kind: kind, priority: Self.priority(kind: kind, localPreference: localPreference),
                  foundation: foundation, relatedAddress: relatedAddress)
    }

    /// A TCP candidate (RFC 6544 §4.2) of `tcpType`, `otherPreference` telling it from others of the
    /// same type and direction (0...8191, e.g. one per address).
    public static func tcp(address: TransportAddress, kind: Kind = .host, tcpType: TCPType, otherPreference: UInt16 = 8191,
                           foundation: String, relatedAddress: TransportAddress? = nil) -> ICECandidate {
        ICECandidate(address: address, kind: kind,
                     priority: tcpPriority(kind: kind, localPreference: tcpLocalPreference(tcpType, otherPreference: otherPreference)),
                     foundation: foundation, relatedAddress: relatedAddress, tcpType: tcpType)
    }

    public var isTCP: Bool { tcpType != nil }

    /// RFC 8445 §5.1.2.1: (2^24)·type preference + (2^8)·local preference + (256 − component ID).
    public static func priority(kind: Kind, localPreference: UInt16, component: UInt32 = 1) -> UInt32 {
        (1 << 24) * kind.typePreference + (1 << 8) * UInt32(localPreference) + (256 - component)
    }

    /// RFC 6544 §4.2: a TCP candidate's priority is RFC 8445's with the local preference
    /// (2^13)·direction-pref + other-pref. Its type preference is below every UDP candidate's but the
    /// relayed one (RFC 6544 §4.2 lets the agent prefer UDP; rtcam does: TCP adds head-of-line
    /// blocking to real-time media): a working UDP pair always ranks above a TCP pair of the same
    /// kind, and above a TCP host pair whatever its kind.
    public static func tcpPriority(kind: Kind, localPreference: UInt16, component: UInt32 = 1) -> UInt32 {
        (1 << 24) * kind.tcpTypePreference + (1 << 8) * UInt32(localPreference) + (256 - component)
    }

    public static func tcpLocalPreference(_ tcpType: TCPType, otherPreference: UInt16) -> UInt16 {
        (1 << 13) * tcpType.directionPreference + min(otherPreference, 8191)
    }

    /// The PRIORITY a check from `local` announces (RFC 8445 §7.1.1): that of a peer-reflexive
    /// candidate of the same transport and local preference.
    static func peerReflexivePriority(like local: ICECandidate) -> UInt32 {
        local.isTCP ? tcpPriority(kind: .peerReflexive, localPreference: local.localPreference)
            : priority(kind: .peerReflexive, localPreference: local.localPreference)
    }

    /// The local preference inside a priority (its middle 16 bits).
    var localPreference: UInt16 { UInt16(truncatingIfNeeded: priority >> 8) }

    /// The a=candidate value (RFC 8839 §5.1): "<foundation> 1 udp <priority> <address> <port> typ <type>
    /// [raddr <address> rport <port>]"; a TCP one says "tcp" and ends with "tcptype <type>" (RFC 6544 §4.5).
    public var sdpValue: String {
        var value = "\(foundation) 1 \(isTCP ? "tcp" : "udp") \(priority) \(address.ip) \(address.port) typ \(kind.rawValue)"
        if let relatedAddress { value += " raddr \(relatedAddress.ip) rport \(relatedAddress.port)" }
        if let tcpType { value += " tcptype \(tcpType.rawValue)" }
        return value
    }

    public var description: String { "\(kind.rawValue) \(address)\(tcpType.map { " tcp \($0.rawValue)" } ?? "")" }

    /// Where datagrams of this candidate really leave from: the relay for a relayed candidate, a TCP
    /// connection for a TCP one, the socket for the others (a reflexive candidate's base is the
    /// socket, RFC 8445 §5.1.1.2).
    public var base: TransportPath.LocalBase { kind == .relayed ? .relay : isTCP ? .tcp : .host }

    /// What an a=candidate value (RFC 8839 §5.1) names, for component 1 over UDP.
    public enum Parsed: Equatable, Sendable {
        case candidate(ICECandidate)
        /// An mDNS name (draft-ietf-mmusic-mdns-ice-candidates §3.1: "<uuid>.local") instead of an
        /// address: usable once resolved (RFC 6762).
        case multicastDNSName(String, port: UInt16, kind: Kind, priority: UInt32, foundation: String)
        /// Another component, a TCP type other than active (rtcam is the passive side only), an
        /// unknown transport or type, or not a candidate at all.
        case unusable(reason: String)
    }

    /// Parses an a=candidate value (the text after "a=candidate:"; a leading "candidate:", as in a
    /// trickled JSON candidate, is allowed too). Extension attributes after the type are passed over,
    /// but for a TCP candidate's "tcptype".
    public static func parse(sdpValue text: String) -> Parsed {
        var fields = text.split(separator: " ", omittingEmptySubsequences: true)
        if let first = fields.first, first.hasPrefix("candidate:") {
            fields[0] = first.dropFirst("candidate:".count)
        }
        guard fields.count >= 8, fields[6] == "typ" else { return .unusable(reason: "not a candidate: \(text)") }
        let foundation = String(fields[0])
        guard fields[1] == "1" else { return .unusable(reason: "component \(fields[1]) (rtcam muxes RTP and RTCP)") }
        let transport = fields[2].lowercased()
        guard transport == "udp" || transport == "tcp" else { return .unusable(reason: "transport \(fields[2])") }
        guard let priority = UInt32(fields[3]), priority > 0 else { return .unusable(reason: "priority \(fields[3])") }
        guard let port = UInt16(fields[5]), port > 0 else { return .unusable(reason: "port \(fields[5])") }
        guard let kind = Kind(rawValue: String(fields[7])) else { return .unusable(reason: "type \(fields[7])") }
        var relatedIP: TransportAddress.IP?, relatedPort: UInt16?, tcpTypeName: Substring?
        var index = 8
        while index + 1 < fields.count {
            if fields[index] == "raddr" { relatedIP = TransportAddress.IP(parsing: String(fields[index + 1])) }
            if fields[index] == "rport" { relatedPort = UInt16(fields[index + 1]) }
            if fields[index] == "tcptype" { tcpTypeName = fields[index + 1] }
            index += 2
        }
        var tcpType: TCPType?
        if transport == "tcp" {
            // RFC 6544 §4.5: rtcam only accepts connections, so only a peer's active candidates pair
            // with it (a passive or simultaneous-open one would need rtcam to connect).
            guard let name = tcpTypeName, let parsed = TCPType(rawValue: name.lowercased()) else {
                return .unusable(reason: "TCP candidate without a tcptype")
            }
            guard parsed == .active else { return .unusable(reason: "tcptype \(name) (rtcam only accepts connections)") }
            tcpType = parsed
        }
        let related = relatedIP.flatMap { ip in relatedPort.map { TransportAddress(ip: ip, port: $0) } }
        let host = String(fields[4])
        guard let ip = TransportAddress.IP(parsing: host) else {
            if host.lowercased().hasSuffix(".local"), host.count > 6, tcpType == nil {
                return .multicastDNSName(host, port: port, kind: kind, priority: priority, foundation: foundation)
            }
            return .unusable(reason: "address \(host)")
        }
        return .candidate(ICECandidate(address: TransportAddress(ip: ip, port: port), kind: kind, priority: priority,
                                       foundation: foundation, relatedAddress: related, tcpType: tcpType))
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
