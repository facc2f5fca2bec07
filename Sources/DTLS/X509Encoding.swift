/// The few DER pieces rtcam writes itself (ITU-T X.690 §8.1): mbedTLS 2.28's certificate writer puts
/// an explicit NULL parameter into ecdsa-with-SHA256 AlgorithmIdentifiers, which RFC 5758 §3.2 says
/// must be absent. Browsers let it pass; strict parsers (Python's `cryptography`, so aiortc) refuse
/// the certificate. `certificateWithoutNullParameters` rebuilds the certificate correctly.
enum X509Encoding {
    /// ecdsa-with-SHA256 (1.2.840.10045.4.3.2), as mbedTLS writes it (with NULL) and as RFC 5758 wants it.
    static let ecdsaWithSHA256WithNull: [UInt8] = [0x30, 0x0C, 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02, 0x05, 0x00]
    static let ecdsaWithSHA256: [UInt8] = [0x30, 0x0A, 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02]

    /// A DER length (X.690 §8.1.3: short form below 128, else long form).
    static func length(_ count: Int) -> [UInt8] {
        if count < 0x80 { return [UInt8(count)] }
        var bytes: [UInt8] = []
        var rest = count
        while rest > 0 {
            bytes.insert(UInt8(rest & 0xFF), at: 0)
            rest >>= 8
        }
        return [0x80 | UInt8(bytes.count)] + bytes
    }

    static func element(tag: UInt8, _ content: [UInt8]) -> [UInt8] { [tag] + length(content.count) + content }

    /// The elements of a constructed DER value's content, as whole TLVs; nil when malformed.
    static func children(of tlv: [UInt8]) -> [[UInt8]]? {
        guard let (contentStart, contentEnd) = bounds(tlv, at: 0), contentEnd == tlv.count else { return nil }
        var result: [[UInt8]] = []
        var index = contentStart
        while index < contentEnd {
            guard let (_, end) = bounds(tlv, at: index), end <= contentEnd else { return nil }
            result.append(Array(tlv[index..<end]))
            index = end
        }
        return result
    }

    /// Content start and element end of the TLV at `index`.
    private static func bounds(_ bytes: [UInt8], at index: Int) -> (Int, Int)? {
        guard index + 2 <= bytes.count else { return nil }
        let first = Int(bytes[index + 1])
        var contentStart = index + 2
        var count = first
        if first & 0x80 != 0 {
            let octets = first & 0x7F
            guard (1...3).contains(octets), contentStart + octets <= bytes.count else { return nil }
            count = 0
            for offset in 0..<octets { count = count << 8 | Int(bytes[contentStart + offset]) }
            contentStart += octets
        }
        guard contentStart + count <= bytes.count else { return nil }
        return (contentStart, contentStart + count)
    }

    /// Rebuilds `certificate` (DER) with RFC 5758 AlgorithmIdentifiers, re-signing the changed
    /// TBSCertificate with `sign` (DER ECDSA signature of the TBS bytes). Returns nil when the input
    /// is not a certificate of that shape.
    static func certificateWithoutNullParameters(_ certificate: [UInt8], sign: ([UInt8]) -> [UInt8]?) -> [UInt8]? {
        guard let parts = children(of: certificate), parts.count == 3,
              var tbsFields = children(of: parts[0]) else { return nil }
        // TBSCertificate: [0] version, serialNumber, signature AlgorithmIdentifier, ... (RFC 5280 §4.1)
        guard let signatureIndex = tbsFields.firstIndex(where: { $0 == ecdsaWithSHA256WithNull || $0 == ecdsaWithSHA256 })
        else { return nil }
        tbsFields[signatureIndex] = ecdsaWithSHA256
        let tbs = element(tag: 0x30, tbsFields.flatMap { $0 })
        guard let signature = sign(tbs) else { return nil }
        let signatureValue = element(tag: 0x03, [0x00] + signature)  // BIT STRING, no unused bits
        return element(tag: 0x30, tbs + ecdsaWithSHA256 + signatureValue)
    }
}
