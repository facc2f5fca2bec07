import RTCBase

/// Digest access authentication for RTSP (RFC 2617 §3, as RFC 2326 §D.2.1 uses it; MD5, no qop:
/// what FFmpeg, GStreamer, VLC and NVRs answer). The server keeps, per secret, HA1 =
/// MD5(username:realm:secret) — never the secret — and checks a client's response against each.
public struct DigestAuthenticator: Sendable {
    public let realm: String

    public init(realm: String) { self.realm = realm }

    /// The stored form of a secret for `username`.
    public func ha1(username: String, secret: String) -> String {
        MD5.hex("\(username):\(realm):\(secret)")
    }

    /// The WWW-Authenticate value for a fresh `nonce` (random, from the caller).
    public func challenge(nonce: String) -> String {
        "Digest realm=\"\(realm)\", nonce=\"\(nonce)\", algorithm=\"MD5\""
    }

    /// The fields of an `Authorization: Digest ...` header; nil for another scheme or a malformed one.
    public static func fields(of header: String) -> [String: String]? {
        var text = Substring(header).trimmingCharacters(in: " \t")
        guard text.lowercased().hasPrefix("digest ") else { return nil }
        text = text.dropFirst(7)
        var fields: [String: String] = [:]
        while !text.isEmpty {
            text = text.trimmingCharacters(in: " \t,")
            guard let equals = text.firstIndex(of: "=") else { break }
            let name = text[..<equals].trimmingCharacters(in: " \t").lowercased()
            text = text[text.index(after: equals)...].trimmingCharacters(in: " \t")
            var value: Substring
            if text.first == "\"" {
                text = text.dropFirst()
                guard let close = text.firstIndex(of: "\"") else { return nil }
                value = text[..<close]
                text = text[text.index(after: close)...]
            } else {
                let end = text.firstIndex(of: ",") ?? text.endIndex
                value = text[..<end].trimmingCharacters(in: " \t")
                text = text[end...]
            }
            guard fields.count < 20 else { return nil }
            fields[String(name)] = String(value)
        }
        return fields.isEmpty ? nil : fields
    }

    /// Whether `header` answers `nonce` for `method` with a secret whose HA1 is among `ha1s`
    /// (for `username`). Returns the matching HA1 (the caller knows which credential it is).
    public func verify(header: String?, method: String, nonce: String, username expected: String, ha1s: [String]) -> String? {
        guard let header, let fields = Self.fields(of: header), fields["username"] == expected,
              fields["realm"] == realm, fields["nonce"] == nonce, let uri = fields["uri"],
              let response = fields["response"]?.lowercased() else { return nil }
        if let algorithm = fields["algorithm"], algorithm.uppercased() != "MD5" { return nil }
        let ha2 = MD5.hex("\(method):\(uri)")
        for ha1 in ha1s {
            let expectedResponse: String
            if let qop = fields["qop"] {
                guard qop == "auth", let nc = fields["nc"], let cnonce = fields["cnonce"] else { continue }
                expectedResponse = MD5.hex("\(ha1):\(nonce):\(nc):\(cnonce):\(qop):\(ha2)")
            } else {
                expectedResponse = MD5.hex("\(ha1):\(nonce):\(ha2)")
            }
            if Self.constantTimeEquals(expectedResponse, response) { return ha1 }
        }
        return nil
    }

    static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for index in 0..<x.count { difference |= x[index] ^ y[index] }
        return difference == 0
    }
}
