import RTCBase

/// Every failure of the RTP target's parsers. Parsers never trap on network input: they throw one of these.
public enum RTPError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A field ran past the end of the datagram (or of the RTCP packet that holds it).
    case truncated(context: String, needed: Int, available: Int)
    /// The version bits are not 2 (RFC 3550 §5.1, §6.4.1).
    case unsupportedVersion(UInt8)
    /// The padding count is zero or larger than the packet (RFC 3550 §5.1 "P", §6.4.1).
    case invalidPadding
    /// The RTCP length field does not fit the datagram (RFC 3550 §6.4.1 "length").
    case invalidLength(declared: Int, available: Int)
    /// A field holds a value the format forbids (with what was wrong).
    case malformed(String)

    init(_ error: ParseError) {
        switch error {
        case let .truncated(context, needed, available):
            self = .truncated(context: context, needed: needed, available: available)
        case let .invalid(reason):
            self = .malformed(reason)
        }
    }

    public var description: String {
        switch self {
        case let .truncated(context, needed, available):
            return "truncated \(context): needed \(needed) bytes, \(available) available"
        case let .unsupportedVersion(version): return "unsupported RTP/RTCP version \(version)"
        case .invalidPadding: return "invalid padding"
        case let .invalidLength(declared, available):
            return "RTCP length \(declared) bytes exceeds the \(available) available"
        case let .malformed(reason): return "malformed: \(reason)"
        }
    }
}
