import RTCBase

/// The body of a WHEP PATCH (RFC 9725 §4.3): an `application/trickle-ice-sdpfrag` (RFC 8840 §9) with
/// trickled candidates, or new ICE credentials for an ICE restart (RFC 8840 §4.4). Only the lines
/// rtcam acts on are kept; others (m=, a=mid, a=ice-options) are passed over.
public struct TrickleICEFragment: Equatable, Sendable {
    public var iceUfrag: String?
    public var icePassword: String?
    /// The values of the a=candidate lines, as written (RFC 8839 §5.1).
    public var candidates: [String] = []
    public var endOfCandidates = false

    /// Same bound as an offer: a fragment is smaller still.
    public static let maximumSize = SessionDescription.maximumSize

    public init(parsing text: String) throws(SDPError) {
        guard text.utf8.count <= Self.maximumSize else { throw .tooLarge(bytes: text.utf8.count) }
        for rawLine in text.split(whereSeparator: \.isNewline) {  // "\r\n" is one Character
            let line = rawLine.trimmingSpaces
            if let value = line.value(after: "a=ice-ufrag:") {
                iceUfrag = value
            } else if let value = line.value(after: "a=ice-pwd:") {
                icePassword = value
            } else if let value = line.value(after: "a=candidate:") {
                candidates.append(value)
            } else if line == "a=end-of-candidates" {
                endOfCandidates = true
            }
        }
    }

    /// Both credentials, as an ICE restart carries them; nil when neither is there.
    /// Throws when only one is (RFC 8840 §4.4: a restart names both).
    public func restartCredentials() throws(SDPError) -> (ufrag: String, password: String)? {
        switch (iceUfrag, icePassword) {
        case let (ufrag?, password?): return (ufrag, password)
        case (nil, nil): return nil
        default: throw .missingICECredentials
        }
    }
}

extension Substring {
    fileprivate func value(after prefix: String) -> String? {
        hasPrefix(prefix) ? String(dropFirst(prefix.count)) : nil
    }
}
