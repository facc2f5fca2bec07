// Data channels in SDP (RFC 8841): an offered `m=application <port> UDP/DTLS/SCTP webrtc-datachannel`
// section is answered with rtcam's SCTP port and max-message-size, bundled with the media (RFC 8843);
// SCTP then runs over the session's one DTLS association (RFC 8261). Kept apart from WHEPAnswerer's
// media code: the answerer asks `WHEPAnswerer.chooseDataChannel` and `appendDataChannelLines`.

/// What the answer agreed for data channels.
public struct NegotiatedDataChannel: Equatable, Sendable {
    public var mid: String?
    /// The offer's `a=sctp-port` (RFC 8841 §5: 5000 when absent); the destination port of our packets.
    public var remoteSCTPPort: UInt16
    /// Ours, as answered (`a=sctp-port`).
    public var localSCTPPort: UInt16
    /// The offer's `a=max-message-size` (RFC 8841 §6.1: 65,536 when absent, 0 for "no limit",
    /// here `Int.max`): the largest message rtcam may send.
    public var remoteMaxMessageSize: Int
    /// Ours, as answered: the largest message rtcam takes in.
    public var localMaxMessageSize: Int

    public init(mid: String?, remoteSCTPPort: UInt16 = WHEPAnswerer.sctpPort, localSCTPPort: UInt16 = WHEPAnswerer.sctpPort,
                remoteMaxMessageSize: Int = 65_536, localMaxMessageSize: Int = WHEPAnswerer.maxMessageSize) {
        self.mid = mid
        self.remoteSCTPPort = remoteSCTPPort
        self.localSCTPPort = localSCTPPort
        self.remoteMaxMessageSize = remoteMaxMessageSize
        self.localMaxMessageSize = localMaxMessageSize
    }
}

extension WHEPAnswerer {
    /// rtcam's SCTP port (RFC 8841 §5; WebRTC stacks all use 5000).
    public static let sctpPort: UInt16 = 5000
    /// rtcam's `a=max-message-size` (RFC 8841 §6): 256 KiB, what its reassembly takes.
    public static let maxMessageSize = 256 * 1024

    /// Whether `section` is a data channel section rtcam serves (RFC 8841 §4.1: proto
    /// `UDP/DTLS/SCTP`, format `webrtc-datachannel`), and with what. The older
    /// `DTLS/SCTP 5000` + `a=sctpmap` form (draft-ietf-mmusic-sctp-sdp-05) is not served: no
    /// browser offers it any longer. A malformed port or size rejects the section.
    static func chooseDataChannel(in section: MediaDescription) -> NegotiatedDataChannel? {
        guard section.kind.asciiLowercased == "application", section.proto.asciiLowercased == "udp/dtls/sctp",
              section.formats == ["webrtc-datachannel"] else { return nil }
        var remotePort = sctpPort
        if let value = section.attribute(named: "sctp-port")?.value {
            guard let port = UInt16(Substring(value).trimmingSpaces), port != 0 else { return nil }
            remotePort = port
        }
        var remoteMaximum = 65_536  // RFC 8841 §6.1: absent means 64 KiB
        if let value = section.attribute(named: "max-message-size")?.value {
            guard let size = UInt64(Substring(value).trimmingSpaces) else { return nil }
            remoteMaximum = size == 0 || size > UInt64(Int.max) ? Int.max : Int(size)
        }
        return NegotiatedDataChannel(mid: section.mid, remoteSCTPPort: remotePort, remoteMaxMessageSize: remoteMaximum)
    }

    /// RFC 8841 §5, §6: the answer's application section. No direction and no rtcp-mux: they describe
    /// RTP (RFC 8829 §5.3.1 puts neither in an application section).
    static func appendDataChannelLines(_ choice: NegotiatedDataChannel, local: LocalTransport, to section: inout MediaDescription) {
        section.attributes.removeAll { attribute in
            attribute.value == nil && (MediaDirection(rawValue: attribute.name) != nil || attribute.name == "rtcp-mux"
                                       || attribute.name == "rtcp-rsize")
        }
        section.attributes.append(SDPAttribute("sctp-port", String(choice.localSCTPPort)))
        section.attributes.append(SDPAttribute("max-message-size", String(choice.localMaxMessageSize)))
        appendCandidates(local, to: &section)
    }
}
