/// MD5 (RFC 1321), for HTTP/RTSP Digest authentication only (RFC 2617 §3.2.2, the algorithm every
/// RTSP client implements). Not for anything that needs a secure hash.
public enum MD5 {
    private static let shifts: [UInt32] = [7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                                           5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
                                           4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                                           6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21]
    /// floor(abs(sin(i + 1)) * 2^32), RFC 1321 §3.4.
    private static let constants: [UInt32] = (0..<64).map { index in
        var sine = Double(index + 1)
        sine = sine < 0 ? -sine : sine
        return UInt32(truncatingIfNeeded: Int64((abs(Self.sin(sine)) * 4_294_967_296.0).rounded(.down)))
    }

    /// sin(x) without Foundation or Glibc: x reduced to [-pi, pi], then a Taylor series (enough terms
    /// for the 32 bits the table needs; checked against RFC 1321's test suite in the tests).
    private static func sin(_ value: Double) -> Double {
        let twoPi = 6.283185307179586476925286766559
        var x = value - (value / twoPi).rounded(.down) * twoPi
        if x > twoPi / 2 { x -= twoPi }
        var term = x, sum = x
        for n in 1..<30 {
            term *= -x * x / Double((2 * n) * (2 * n + 1))
            sum += term
        }
        return sum
    }

    public static func digest(_ message: [UInt8]) -> [UInt8] {
        var a0: UInt32 = 0x6745_2301, b0: UInt32 = 0xEFCD_AB89, c0: UInt32 = 0x98BA_DCFE, d0: UInt32 = 0x1032_5476
        var padded = message
        padded.append(0x80)
        while padded.count % 64 != 56 { padded.append(0) }
        let bitLength = UInt64(message.count) &* 8
        for shift in stride(from: 0, to: 64, by: 8) { padded.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift))) }
        var words = [UInt32](repeating: 0, count: 16)
        for chunk in stride(from: 0, to: padded.count, by: 64) {
            for index in 0..<16 {
                let base = chunk + index * 4
                words[index] = UInt32(padded[base]) | UInt32(padded[base + 1]) << 8 | UInt32(padded[base + 2]) << 16 | UInt32(padded[base + 3]) << 24
            }
            var a = a0, b = b0, c = c0, d = d0
            for index in 0..<64 {
                var f: UInt32
                let g: Int
                switch index {
                case 0..<16: f = (b & c) | (~b & d); g = index
                case 16..<32: f = (d & b) | (~d & c); g = (5 * index + 1) % 16
                case 32..<48: f = b ^ c ^ d; g = (3 * index + 5) % 16
                default: f = c ^ (b | ~d); g = (7 * index) % 16
                }
                f = f &+ a &+ constants[index] &+ words[g]
                a = d
                d = c
                c = b
                b = b &+ (f << shifts[index] | f >> (32 - shifts[index]))
            }
            a0 = a0 &+ a; b0 = b0 &+ b; c0 = c0 &+ c; d0 = d0 &+ d
        }
        var out: [UInt8] = []
        for word in [a0, b0, c0, d0] { for shift in stride(from: 0, to: 32, by: 8) { out.append(UInt8(truncatingIfNeeded: word >> UInt32(shift))) } }
        return out
    }

    public static func hex(_ text: String) -> String {
        digest(Array(text.utf8)).map { byte in
            let digits = Array("0123456789abcdef")
            return String(digits[Int(byte >> 4)]) + String(digits[Int(byte & 0xF)])
        }.joined()
    }
}

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
