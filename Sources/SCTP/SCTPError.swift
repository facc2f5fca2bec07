import RTCBase

/// Every failure the SCTP target reports (one error type per module, DESIGN.md).
public enum SCTPError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A packet or chunk that does not parse (RFC 9260 §3).
    case malformed(ParseError)
    /// The checksum does not match (RFC 9260 §6.8: the packet is discarded silently).
    case badChecksum
    /// `send` before the association is up, or after it began to shut down or closed.
    case notEstablished
    /// A message larger than the peer's max-message-size (RFC 8841 §6), or empty.
    case messageSize(Int)
    /// A stream id the peer does not accept (its inbound stream count), or a stream being reset.
    case streamUnavailable(UInt16)

    public var description: String {
        switch self {
        case let .malformed(error): return "malformed SCTP: \(error)"
        case .badChecksum: return "bad CRC32c"
        case .notEstablished: return "association not established"
        case let .messageSize(size): return "message of \(size) bytes not allowed"
        case let .streamUnavailable(stream): return "stream \(stream) unavailable"
        }
    }
}
