import RTCBase
import STUN

/// A TURN server's long-term credentials (RFC 8489 §9.2): a username and password, from which the
/// MESSAGE-INTEGRITY key is made once the server named its realm.
public struct TURNCredentials: Equatable, Sendable {
    public var username: String
    public var password: String

    public init(username: String, password: String) {
        self.username = username
        self.password = password
    }

    /// coturn's "TURN REST API" credentials (`--use-auth-secret`, draft-uberti-behave-turn-rest-00
    /// §2.2): the username is "expiry:user" with expiry in Unix seconds, the password
    /// base64(HMAC-SHA1(secret, username)). Sans-IO: the owner reads the wall clock and passes
    /// the expiry.
    public static func sharedSecret(_ secret: String, user: String, expiresAtUnixSeconds expiry: UInt64) -> TURNCredentials {
        let username = user.isEmpty ? "\(expiry)" : "\(expiry):\(user)"
        let mac = HMACSHA1.authenticationCode(key: Array(secret.utf8), message: Array(username.utf8))
        return TURNCredentials(username: username, password: Base64.encode(mac))
    }

    /// RFC 8489 §9.2.2: key = MD5(username ":" OpaqueString(realm) ":" OpaqueString(password)).
    /// Plain ASCII names and passwords are unchanged by OpaqueString; others are used as given.
    public func integrityKey(realm: String) -> [UInt8] {
        MD5.digest(Array("\(username):\(realm):\(password)".utf8))
    }
}

/// Base64 with padding (RFC 4648 §4), only what the REST credentials need.
public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let remaining = bytes.count - index
            let b0 = UInt32(bytes[index])
            let b1 = remaining > 1 ? UInt32(bytes[index + 1]) : 0
            let b2 = remaining > 2 ? UInt32(bytes[index + 2]) : 0
            let group = b0 << 16 | b1 << 8 | b2
            out.append(alphabet[Int(group >> 18 & 63)])
            out.append(alphabet[Int(group >> 12 & 63)])
            out.append(remaining > 1 ? alphabet[Int(group >> 6 & 63)] : UInt8(ascii: "="))
            out.append(remaining > 2 ? alphabet[Int(group & 63)] : UInt8(ascii: "="))
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}
