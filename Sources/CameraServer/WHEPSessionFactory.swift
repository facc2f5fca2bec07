import CongestionControl
import DTLS
import ICE
import RTCBase
import SDP
import WebRTCSession

/// Turns a WHEP offer into a viewer's session (RFC 9725 §4.2): parse, answer (WHEPAnswerer), and a
/// PeerSession with fresh ICE credentials and its DTLS endpoint. Touches no shared state, so the hub
/// runs it before it takes its lock.
struct WHEPSessionFactory: Sendable {
    let certificate: DTLSCertificate
    /// The SSRCs every viewer is sent (the hub's MediaPacketizer: packetized once for all).
    let videoSSRC: UInt32
    let videoRTXSSRC: UInt32
    let audioSSRC: UInt32
    let ntpNanosecondsAtMonotonicZero: UInt64
    /// RTCAM_DTLS_DEBUG=1..4: mbedTLS's handshake trace on stderr, for field debugging.
    let dtlsDebugLevel: Int32 = Environment.value("RTCAM_DTLS_DEBUG").flatMap { Int32($0) } ?? 0
    /// RTCAM_PACING_FACTOR=F (1-10; the latency benchmark's A/B): the pacer sends at F × the viewer's
    /// estimate instead of libwebrtc's 2.5 (10: its 40 ms bucket holds 400 ms of the estimate, any
    /// frame on a good link: as unpaced). A congestion episode paces by the link's rate whatever it is.
    let pacingFactor: Double = Environment.value("RTCAM_PACING_FACTOR").flatMap { Double($0) } ?? 2.5

    init(certificate: DTLSCertificate, packetizer: MediaPacketizer, ntpNanosecondsAtMonotonicZero: UInt64) {
        self.certificate = certificate
        videoSSRC = packetizer.videoSSRC
        videoRTXSSRC = packetizer.videoRTXSSRC
        audioSSRC = packetizer.audioSSRC
        self.ntpNanosecondsAtMonotonicZero = ntpNanosecondsAtMonotonicZero
    }

    struct Made {
        var session: PeerSession
        var localICE: ICECredentials
        var answer: String
        /// Full ICE: the offer's candidates named by mDNS (`<uuid>.local`), for the hub to resolve.
        var multicastDNSCandidates: [String] = []
    }

    /// `client`: the IP the offer was POSTed from (nil: checks are answered from anywhere).
    func makeSession(offer text: String, settings: HubSettings, client: TransportAddress.IP? = nil, now: MonotonicTime,
                     random: inout some RandomNumberGenerator) throws(WHEPError) -> Made {
        let offer: SessionDescription
        do {
            offer = try SessionDescription(parsing: text)
        } catch {
            throw .malformedOffer("\(error)")
        }
        let localICE = ICECredentials.random(using: &random)
        let candidates = settings.candidateAddresses.enumerated().map { index, ip in
            HostCandidate(address: TransportAddress(ip: ip, port: settings.mediaPort), foundation: String(index + 1),
                          localPreference: UInt16(clamping: 65_535 - index))
        }
        var local = LocalTransport(
            iceUfrag: localICE.ufrag, icePassword: localICE.password, fingerprintSHA256: certificate.fingerprintSDP,
            candidates: candidates, videoSSRC: videoSSRC, videoRTXSSRC: videoRTXSSRC,
            audioSSRC: audioSSRC, cname: "rtcam", streamID: "rtcam")
        let fullICE = settings.iceMode == .full
        if fullICE {
            local.isICELite = false
            // The base of a server-reflexive address is the socket: the first host candidate of its
            // family names it (a STUN server over IPv4 maps an IPv4 base).
            local.serverReflexiveCandidates = settings.serverReflexiveAddresses.enumerated().compactMap { index, address in
                guard let base = candidates.first(where: { $0.address.ip.isIPv6 == address.ip.isIPv6 })?.address else { return nil }
                return ServerReflexiveCandidate(address: address, base: base, foundation: "s\(index + 1)",
                                                localPreference: UInt16(clamping: 65_535 - index))
            }
            // The TURN allocation's relayed address (RFC 8445 §5.1.1.2), its related address the one
            // the server saw (RFC 8839 §5.1 raddr/rport).
            if let relayed = settings.relayedCandidate {
                local.relayedCandidates = [RelayedCandidate(address: relayed.relayed, related: relayed.mapped, foundation: "r1")]
            }
            // ICE-TCP (RFC 6544): the TCP listener at each host address, for viewers without UDP.
            if let port = settings.iceTCPPort {
                local.passiveTCPCandidates = settings.candidateAddresses.enumerated().map { index, ip in
                    let candidate = ICECandidate.tcp(address: TransportAddress(ip: ip, port: port), tcpType: .passive,
                                                     otherPreference: UInt16(clamping: 8191 - index), foundation: "t\(index + 1)")
                    return PassiveTCPCandidate(address: candidate.address, foundation: candidate.foundation, priority: candidate.priority)
                }
            }
        }
        let capabilities = LocalCapabilities(h264ProfileLevelIDs: [settings.h264ProfileLevelID],
                                             audio: settings.hasAudio, video: settings.hasVideo,
                                             speaker: settings.hasSpeaker)
        let answer: SessionDescription
        let negotiated: NegotiatedSession
        do {
            (answer, negotiated) = try WHEPAnswerer.answer(offer: offer, capabilities: capabilities, local: local)
        } catch let error {
            if case .noCommonCodec = error { throw .noCommonCodec("\(error)") }
            throw .malformedOffer("\(error)")
        }
        var configuration = PeerSessionConfiguration(
            negotiated: negotiated, localICE: localICE, certificate: certificate,
            ntpNanosecondsAtMonotonicZero: ntpNanosecondsAtMonotonicZero, cname: "rtcam", dtlsDebugLevel: dtlsDebugLevel)
        // Issue 24: each viewer's estimate starts at what the encoder sends (a LAN viewer costs the
        // others nothing while its estimator learns its link) and may go a quarter above it, so a
        // link that takes the configured bitrate shows as such (EncoderBitratePolicy keeps audio and
        // headroom out of it).
        let ceiling = (settings.videoBitrateKbps + 64) * 1000 * 10 / 9
        configuration.bandwidth = BandwidthEstimatorConfiguration(
            startBitsPerSecond: ceiling, minimumBitsPerSecond: 100_000, maximumBitsPerSecond: ceiling * 5 / 4,
            pacingFactor: pacingFactor)
        configuration.videoRTXSSRC = videoRTXSSRC
        configuration.congestionResponse.holdsVideo = settings.videoFollowsEstimate
        if fullICE {
            configuration.iceMode = .full
            configuration.localCandidates = candidates.map {
                ICECandidate(address: $0.address, kind: .host, priority: $0.priority, foundation: $0.foundation)
            } + local.serverReflexiveCandidates.map {
                ICECandidate(address: $0.address, kind: .serverReflexive, priority: $0.priority, foundation: $0.foundation,
                             relatedAddress: $0.base)
            } + local.relayedCandidates.map {
                ICECandidate(address: $0.address, kind: .relayed, priority: $0.priority, foundation: $0.foundation,
                             relatedAddress: $0.related)
            } + local.passiveTCPCandidates.map {
                ICECandidate(address: $0.address, kind: .host, priority: $0.priority, foundation: $0.foundation, tcpType: .passive)
            }
            configuration.remoteCandidates = Self.candidateValues(in: offer)
            configuration.remoteCandidatesComplete = offer.media.contains { $0.hasEndOfCandidates }
            // A viewer has a handful of candidates, so rtcam's checks on all of them leave within a
            // few tens of milliseconds, its relayed pairs last (their priority is the lowest). Its
            // checks to the viewer's public addresses open the camera's router before the viewer's
            // own checks arrive, and so a direct pair works before a relayed one even for a viewer
            // that nominates the first pair that works (aiortc does). 10 ms, not RFC 8445's default
            // 50: above the 5 ms floor (§14.2) even with a second viewer checking at the same time.
            configuration.icePacingInterval = .milliseconds(10)
        }
        if let client {
            // ICE-lite (RFC 8445 §2.5) never checks the viewer's side: it answers whoever sends a valid
            // check. Only the WHEP client and the addresses it offered may become a media destination.
            configuration.allowedRemoteIPs = Set([client] + Self.candidateIPs(in: offer))
        }
        do {
            let session = try PeerSession(configuration: configuration, now: now, random: &random)
            var made = Made(session: session, localICE: localICE, answer: answer.serialized())
            if fullICE { made.multicastDNSCandidates = Self.multicastDNSCandidates(in: Self.candidateValues(in: offer)) }
            return made
        } catch {
            throw .internalFailure("DTLS setup failed: \(error)")
        }
    }

    /// The candidate values whose address is an mDNS name.
    static func multicastDNSCandidates(in values: [String]) -> [String] {
        values.filter { if case .multicastDNSName = ICECandidate.parse(sdpValue: $0) { true } else { false } }
    }

    /// The offer's a=candidate values, each once (a BUNDLE offer repeats them per section).
    static func candidateValues(in offer: SessionDescription) -> [String] {
        var seen = Set<String>()
        return offer.media.flatMap(\.candidates).filter { seen.insert($0).inserted }
    }

    /// The IP addresses of the offer's a=candidate lines (RFC 8839 §5.1: the fifth field);
    /// mDNS names (RFC 8839 §5.1 with .local) are not addresses and are left out.
    static func candidateIPs(in offer: SessionDescription) -> [TransportAddress.IP] {
        offer.media.flatMap(\.candidates).compactMap { value in
            let fields = value.split(separator: " ")
            return fields.count > 4 ? TransportAddress.IP(parsing: String(fields[4])) : nil
        }
    }
}
