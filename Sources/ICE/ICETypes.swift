import RTCBase
import STUN

/// ICE short-term credentials (RFC 8445 §5.3, SDP a=ice-ufrag / a=ice-pwd).
public struct ICECredentials: Equatable, Sendable {
    public var ufrag: String
    public var password: String

    public init(ufrag: String, password: String) {
        self.ufrag = ufrag
        self.password = password
    }

    /// Short-term credential key for MESSAGE-INTEGRITY (RFC 8489 §9.1.1).
    var integrityKey: [UInt8] { Array(password.utf8) }
}

/// What an agent asks its owner to do, in order.
public enum ICEAction: Equatable, Sendable {
    case send([UInt8], to: TransportAddress)
    /// The nominated pair (USE-CANDIDATE), or the peer's address changed.
    case selected(TransportAddress)
    /// No valid check (lite side) or no answered check (controlling side) for 30 s (RFC 7675 §5.1).
    case consentLost
    /// A message we answered with an error or dropped (for logging/counting).
    case rejected(reason: String)
}

/// RFC 7675 §5.1: consent expires 30 s after the last proof of it.
let consentTimeout: Duration = .seconds(30)
