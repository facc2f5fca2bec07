/// What a datagram on the one shared UDP port is, by its first byte (RFC 7983 §7) and, for RTP vs
/// RTCP under rtcp-mux, by the payload-type field (RFC 5761 §4).
public enum DatagramKind: Equatable, Sendable {
    case stun
    case dtls
    case rtp
    case rtcp
    case unknown

    public init(classifying datagram: [UInt8]) {
        guard let first = datagram.first else { self = .unknown; return }
        switch first {
        case 0...3: self = .stun
        case 20...63: self = .dtls
        case 128...191:
            guard datagram.count >= 2 else { self = .unknown; return }
            // RFC 5761 §4: RTCP packet types 192-223 occupy the second byte; RTP payload types there
            // (with the marker bit) never collide with 200-206 when PTs stay out of 64-95.
            let secondByte = datagram[1]
            self = (192...223).contains(secondByte) ? .rtcp : .rtp
        default: self = .unknown
        }
    }
}
