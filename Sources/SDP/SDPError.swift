/// Every way parsing an SDP or answering an offer can fail. The HTTP layer maps these to 400/406
/// responses; `description` is safe to log and to return to the client.
public enum SDPError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The text is larger than `SessionDescription.maximumSize` bytes.
    case tooLarge(bytes: Int)
    /// More m-lines than `SessionDescription.maximumMediaSections`.
    case tooManyMediaSections(count: Int)
    /// A line that does not follow RFC 8866 §5 grammar (1-based line number, text shortened to 80 characters).
    case malformedLine(number: Int, text: String)
    /// A line RFC 8866 §5 requires ("v", "o" or "s") is absent.
    case missingRequiredLine(String)
    /// No H.264 (packetization-mode 1, a profile we can produce) and no Opus we could use: the offered
    /// codec names, deduplicated, in offer order (video first when a video section was offered).
    case noCommonCodec(offered: [String])
    /// No a=ice-ufrag / a=ice-pwd at media or session level (RFC 8839 §5.4).
    case missingICECredentials
    /// No a=fingerprint for the transport section (RFC 8122 §5); `mid` of the section looked at.
    case missingFingerprint(mid: String?)
    /// Only fingerprints with hash functions other than sha-256 were offered.
    case unsupportedFingerprintAlgorithm(String)
    /// The transport section lacks a=rtcp-mux (RFC 8858 / RFC 8829 §5.1.3 requires muxing for us).
    case notRTCPMux
    /// a=setup:holdconn or another value we cannot act on (RFC 4145 §4).
    case unsupportedSetupRole(String)

    public var description: String {
        switch self {
        case let .tooLarge(bytes): return "SDP too large (\(bytes) bytes)"
        case let .tooManyMediaSections(count): return "SDP has too many media sections (\(count))"
        case let .malformedLine(number, text): return "malformed SDP line \(number): \(text)"
        case let .missingRequiredLine(type): return "SDP lacks its \(type)= line"
        case let .noCommonCodec(offered):
            return "no common codec (offered: \(offered.joined(separator: ", ")); rtcam sends H.264 packetization-mode 1 and Opus)"
        case .missingICECredentials: return "offer lacks a=ice-ufrag/a=ice-pwd"
        case let .missingFingerprint(mid): return "offer lacks a=fingerprint" + (mid.map { " (mid \($0))" } ?? "")
        case let .unsupportedFingerprintAlgorithm(name): return "unsupported fingerprint hash \(name); sha-256 required"
        case .notRTCPMux: return "offer lacks a=rtcp-mux"
        case let .unsupportedSetupRole(value): return "unsupported a=setup:\(value)"
        }
    }
}
