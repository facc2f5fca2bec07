/// Why a datagram is not an acceptable STUN message (RFC 8489 §6.3).
public enum STUNError: Error, Equatable, Sendable {
    /// Shorter than the 20-byte header.
    case tooShort(length: Int)
    /// The first two bits are not zero or the magic cookie is wrong (RFC 8489 §5).
    case notSTUN
    /// The header's length field disagrees with the datagram or is not a multiple of 4.
    case lengthMismatch(declared: Int, actual: Int)
    /// An attribute header or value (with padding) runs past the end of the message.
    case truncatedAttribute(type: UInt16)
    /// A known attribute whose value has the wrong size or content.
    case invalidAttribute(type: UInt16, reason: String)
    /// FINGERPRINT must be the last attribute (RFC 8489 §14.7).
    case attributeAfterFingerprint
}
