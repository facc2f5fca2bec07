public import RTCBase

/// What rtcam can send. `h264ProfileLevelIDs` lists what the encoder can produce, preferred first.
public struct LocalCapabilities: Sendable {
    public var h264ProfileLevelIDs: [String]
    public var audio: Bool
    public var video: Bool
    /// The camera plays what a viewer sends on its audio m-line (talkback, issue 17): a `sendrecv`
    /// audio offer is then answered `sendrecv`.
    public var speaker: Bool
    /// Whether an offered data channel section (RFC 8841) is answered; else it is rejected.
    public var dataChannels = true

    public init(h264ProfileLevelIDs: [String] = ["42e01f"], audio: Bool = true, video: Bool = true, speaker: Bool = false) {
        self.h264ProfileLevelIDs = h264ProfileLevelIDs
        self.audio = audio
        self.video = video
        self.speaker = speaker
    }
}

/// A host candidate of rtcam's UDP socket (RFC 8445 §5.1.1.1), component 1, UDP.
public struct HostCandidate: Equatable, Sendable {
    public var address: TransportAddress
    public var foundation: String
    public var priority: UInt32

    public init(address: TransportAddress, foundation: String = "1", priority: UInt32) {
        self.address = address
        self.foundation = foundation
        self.priority = priority
    }

    /// Priority from RFC 8445 §5.1.2.1 with the host type preference 126.
    public init(address: TransportAddress, foundation: String = "1", localPreference: UInt16 = 65535) {
        self.init(address: address, foundation: foundation,
                  priority: HostCandidate.hostPriority(localPreference: localPreference))
    }

    /// RFC 8445 §5.1.2.1 with the host type preference 126.
    public static func hostPriority(localPreference: UInt16, component: UInt8 = 1) -> UInt32 {
        candidatePriority(typePreference: 126, localPreference: localPreference, component: component)
    }

    /// RFC 8445 §5.1.2.1: (2^24)·type preference + (2^8)·local preference + (256 − component ID);
    /// the one formula of the host, server-reflexive and relayed candidates rtcam answers with.
    static func candidatePriority(typePreference: UInt32, localPreference: UInt16, component: UInt8 = 1) -> UInt32 {
        (1 << 24) * typePreference + (1 << 8) * UInt32(localPreference) + (256 - UInt32(component))
    }

    /// The a=candidate value (RFC 8839 §5.1): "<foundation> 1 udp <priority> <address> <port> typ host".
    public var sdpValue: String {
        "\(foundation) 1 udp \(priority) \(address.ip) \(address.port) typ host"
    }
}

/// A server-reflexive candidate (RFC 8445 §5.1.1.2): rtcam's socket (`base`) as a STUN server saw it.
public struct ServerReflexiveCandidate: Equatable, Sendable {
    public var address: TransportAddress
    public var base: TransportAddress
    public var foundation: String
    public var priority: UInt32

    /// RFC 8445 §5.1.2.1 with the server-reflexive type preference 100.
    public init(address: TransportAddress, base: TransportAddress, foundation: String, localPreference: UInt16 = 65535) {
        self.address = address
        self.base = base
        self.foundation = foundation
        priority = HostCandidate.candidatePriority(typePreference: 100, localPreference: localPreference)
    }

    /// "<foundation> 1 udp <priority> <address> <port> typ srflx raddr <base> rport <port>" (RFC 8839 §5.1).
    public var sdpValue: String {
        "\(foundation) 1 udp \(priority) \(address.ip) \(address.port) typ srflx raddr \(base.ip) rport \(base.port)"
    }
}

/// A relayed candidate (RFC 8445 §5.1.1.2, RFC 8656): the TURN allocation's relayed address, with
/// the server-reflexive address the TURN server saw rtcam at as related address.
public struct RelayedCandidate: Equatable, Sendable {
    public var address: TransportAddress
    public var related: TransportAddress
    public var foundation: String
    public var priority: UInt32

    /// RFC 8445 §5.1.2.1 with the relayed type preference 0 (§5.1.2.2: the lowest, so any working
    /// direct pair ranks above it).
    public init(address: TransportAddress, related: TransportAddress, foundation: String, localPreference: UInt16 = 65535) {
        self.address = address
        self.related = related
        self.foundation = foundation
        priority = HostCandidate.candidatePriority(typePreference: 0, localPreference: localPreference)
    }

    /// "<foundation> 1 udp <priority> <address> <port> typ relay raddr <mapped> rport <port>" (RFC 8839 §5.1).
    public var sdpValue: String {
        "\(foundation) 1 udp \(priority) \(address.ip) \(address.port) typ relay raddr \(related.ip) rport \(related.port)"
    }
}

/// rtcam's passive ICE-TCP candidate (RFC 6544): its TCP listener, which accepts the viewer's
/// connections. The priority is the ICE agent's (RFC 6544 §4.2), given as is.
public struct PassiveTCPCandidate: Equatable, Sendable {
    public var address: TransportAddress
    public var foundation: String
    public var priority: UInt32

    public init(address: TransportAddress, foundation: String, priority: UInt32) {
        self.address = address
        self.foundation = foundation
        self.priority = priority
    }

    /// "<foundation> 1 tcp <priority> <address> <port> typ host tcptype passive" (RFC 6544 §4.5).
    public var sdpValue: String {
        "\(foundation) 1 tcp \(priority) \(address.ip) \(address.port) typ host tcptype passive"
    }
}

/// rtcam's side of the transport and its send streams, as the answer announces them.
public struct LocalTransport: Sendable {
    public var iceUfrag: String
    public var icePassword: String
    /// "AB:CD:..." of the DTLS certificate (DTLSCertificate.fingerprintSDP).
    public var fingerprintSHA256: String
    public var candidates: [HostCandidate]
    /// Announced after the host candidates (full ICE, issue 19).
    public var serverReflexiveCandidates: [ServerReflexiveCandidate] = []
    /// Announced last: the TURN allocation's relayed address (full ICE with `--turn`).
    public var relayedCandidates: [RelayedCandidate] = []
    /// Announced after the relayed one (full ICE with ICE-TCP on): the TCP listener, for viewers whose UDP is blocked.
    public var passiveTCPCandidates: [PassiveTCPCandidate] = []
    /// The answer says a=ice-lite (RFC 8839 §5.3): rtcam answers checks but sends none.
    public var isICELite = true
    public var videoSSRC: UInt32
    public var videoRTXSSRC: UInt32
    public var audioSSRC: UInt32
    /// RTCP CNAME (RFC 7022), the same for all of a viewer's streams.
    public var cname: String
    /// The msid stream id (RFC 8830); track ids are "<streamID>-video" and "<streamID>-audio".
    public var streamID: String
    /// The o= line's sess-id (RFC 8866 §5.2).
    public var sessionID: UInt64

    public init(iceUfrag: String, icePassword: String, fingerprintSHA256: String, candidates: [HostCandidate],
                videoSSRC: UInt32, videoRTXSSRC: UInt32, audioSSRC: UInt32, cname: String, streamID: String,
                sessionID: UInt64? = nil) {
        self.iceUfrag = iceUfrag
        self.icePassword = icePassword
        self.fingerprintSHA256 = fingerprintSHA256
        self.candidates = candidates
        self.videoSSRC = videoSSRC
        self.videoRTXSSRC = videoRTXSSRC
        self.audioSSRC = audioSSRC
        self.cname = cname
        self.streamID = streamID
        self.sessionID = sessionID ?? stableSessionID(iceUfrag + icePassword)
    }
}

/// What rtcam is in the DTLS handshake.
public enum DTLSSetupRole: Sendable, Equatable {
    case client, server
}

/// The contract's earlier spelling.
public typealias DTLSRoleSDP = DTLSSetupRole

public struct NegotiatedVideo: Equatable, Sendable {
    public var mid: String?
    public var payloadType: UInt8
    public var rtxPayloadType: UInt8?
    /// The profile-level-id written in the answer.
    public var profileLevelID: String
    /// The profile and the highest level the sent stream may use (the offer's profile, level ≤ the
    /// offered one): configure the encoder / check the SPS against this one.
    public var sendProfileLevelID: String
    public var nack: Bool
    public var pli: Bool
    public var fir: Bool
    public var remb: Bool
    public var transportCC: Bool
    /// uri → id of the header extensions echoed (mid, abs-send-time, transport-wide-cc), see RTPHeaderExtensionURI.
    public var extensionIDs: [String: UInt8]
}

public struct NegotiatedAudio: Equatable, Sendable {
    public var mid: String?
    public var payloadType: UInt8
    /// The receiver can use Opus in-band FEC (offer's useinbandfec=1, RFC 7587 §6.1).
    public var useInbandFEC: Bool
    /// The receiver prefers stereo (offer's stereo=1).
    public var stereo: Bool
    public var transportCC: Bool
    public var extensionIDs: [String: UInt8]
    /// The viewer sends Opus on this m-line and rtcam plays it (answered sendrecv; issue 17).
    public var receive: Bool = false
}

public struct NegotiatedSession: Equatable, Sendable {
    public var remoteICEUfrag: String
    public var remoteICEPassword: String
    public var remoteFingerprintSHA256: [UInt8]
    public var localDTLSRole: DTLSSetupRole
    /// nil when no video is sent (not offered, rejected, or the offer's direction was sendonly/inactive).
    public var video: NegotiatedVideo?
    public var audio: NegotiatedAudio?
    /// The mids in the answer's BUNDLE group, in order (empty when the offer had no BUNDLE group).
    public var bundleMids: [String]
    public var rtcpReducedSize: Bool
    /// The data channel section answered (RFC 8841), nil when none was offered or it was rejected.
    public var dataChannel: NegotiatedDataChannel? = nil
}

/// A 63-bit FNV-1a hash: a deterministic o= sess-id without a random source.
func stableSessionID(_ text: String) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 {
        hash ^= UInt64(byte)
        hash = hash &* 0x0000_0100_0000_01B3
    }
    return hash & 0x7FFF_FFFF_FFFF_FFFF
}
