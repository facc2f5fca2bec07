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

    /// RFC 8839 §5.4 ice-char: ALPHA / DIGIT / "+" / "/".
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
    static let characters = Set(alphabet)

    /// Fresh credentials: a ufrag of at least 24 bits and a password of at least 128 bits of
    /// randomness (RFC 8445 §5.3; 6 bits a character).
    public static func random(ufragLength: Int = 8, passwordLength: Int = 24,
                              using random: inout some RandomNumberGenerator) -> ICECredentials {
        func string(_ length: Int) -> String {
            String((0..<length).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] })
        }
        return ICECredentials(ufrag: string(ufragLength), password: string(passwordLength))
    }

    /// A peer's credentials, if well formed (RFC 8839 §5.4): ufrag 4-256 and password 22-256 ice-chars.
    public init?(validatingUfrag ufrag: String, password: String) {
        guard (4...256).contains(ufrag.count), (22...256).contains(password.count),
              ufrag.allSatisfy(Self.characters.contains), password.allSatisfy(Self.characters.contains) else { return nil }
        self.init(ufrag: ufrag, password: password)
    }
}

/// What an agent asks its owner to do, in order. Every address comes with the base it belongs to
/// (`TransportPath`): a check, a response or a selected pair on the relay base goes through the TURN
/// allocation, one on the host base straight from the media socket.
public enum ICEAction: Equatable, Sendable {
    case send([UInt8], on: TransportPath)
    /// A valid check on this path was answered with success (RFC 8445 §7.3.1.4): the path is a
    /// working pair, the only kind DTLS and RTCP may come from (RFC 8445 §7.3, RFC 7675 §5.1).
    case checked(TransportPath)
    /// The nominated pair (USE-CANDIDATE), or the peer's address changed.
    case selected(TransportPath)
    /// No valid check (lite side) or no answered check (controlling side) for 30 s (RFC 7675 §5.1).
    case consentLost
    /// A message we answered with an error or dropped (for logging/counting).
    case rejected(reason: String)
}

/// RFC 7675 §5.1: consent expires 30 s after the last proof of it.
let consentTimeout: Duration = .seconds(30)
