import RTCBase

/// Every failure of the DTLS target.
public enum DTLSError: Error, Equatable, Sendable {
    /// The peer's certificate does not hash to the fingerprint from its SDP (RFC 8122 §5, RFC 5763 §5).
    case fingerprintMismatch
    /// The peer presented no certificate; WebRTC requires one on both sides (RFC 8827 §6.5).
    case missingPeerCertificate
    /// The handshake finished without a DTLS-SRTP profile (no `use_srtp`, or none in common,
    /// RFC 5764 §4.1.1).
    case noCommonSRTPProfile
    /// None of the requested SRTP profiles can be negotiated by the linked mbedTLS.
    case unsupportedSRTPProfiles([SRTPProfile])
    /// The handshake retransmissions ran out (RFC 6347 §4.2.4.1).
    case handshakeTimeout
    /// Application data before the handshake finished or after close/failure.
    case notConnected
    /// A PEM that does not hold a usable private key + certificate pair.
    case invalidCertificate(String)
    /// A negative mbedTLS error code, the function that returned it, and mbedtls_strerror's text.
    case library(code: Int32, function: String, description: String)
}

public enum DTLSRole: Sendable, Equatable { case client, server }

public enum DTLSEvent: Equatable, Sendable {
    /// Handshake done, peer certificate matched, SRTP profile negotiated, keys exported (RFC 5764 §4.2).
    case connected(SRTPKeyingMaterial)
    /// Fingerprint mismatch, handshake error, timeout. The endpoint is dead afterwards.
    case failed(DTLSError)
    /// The peer sent close_notify (RFC 5246 §7.2.1).
    case closed
    case applicationData([UInt8])
}

/// An ECDSA P-256 key with its self-signed certificate. Plain Swift values only (PEM text, DER
/// bytes), so it is `Sendable` and shared by all endpoints; each endpoint parses its own copy.
public struct DTLSCertificate: Sendable, Equatable {
    /// Private key PEM followed by the certificate PEM.
    public let pem: String
    /// The certificate in DER, as sent in the handshake's Certificate message.
    public let certificateDER: [UInt8]
    /// SHA-256 of the DER certificate (RFC 8122 §5).
    public let fingerprintSHA256: [UInt8]

    /// A new ECDSA P-256 key and a self-signed X.509 v3 certificate (SHA-256, valid 2024–2034),
    /// drawn from `random` only.
    public static func generate(commonName: String = "rtcam",
                                random: inout some RandomNumberGenerator) throws(DTLSError) -> DTLSCertificate {
        try DTLSCertificate(pem: try generateSelfSignedPEM(commonName: commonName, random: &random))
    }

    /// The same for an HTTPS server: its host names and addresses as subjectAltNames (RFC 5280
    /// §4.2.1.6), serverAuth, the common name the first DNS name.
    public static func generate(subjectAltNames: [SubjectAltName],
                                random: inout some RandomNumberGenerator) throws(DTLSError) -> DTLSCertificate {
        let commonName = subjectAltNames.lazy.compactMap { if case let .dns(name) = $0 { name } else { nil } }.first ?? "rtcam"
        return try DTLSCertificate(pem: try generateSelfSignedPEM(commonName: commonName, subjectAltNames: subjectAltNames,
                                                                  random: &random))
    }

    /// Private key PEM + certificate PEM (any order; what `pem` gives).
    public init(pem: String) throws(DTLSError) {
        certificateDER = try parseKeyAndCertificate(pem: pem)
        fingerprintSHA256 = MbedDigest.sha256(certificateDER)
        self.pem = pem
    }

    /// "AB:CD:…" for `a=fingerprint:sha-256 …` (RFC 8122 §5).
    public var fingerprintSDP: String { Self.sdpFingerprint(fingerprintSHA256) }

    /// Upper-case hex pairs joined by colons (RFC 8122 §5 `fingerprint` syntax).
    public static func sdpFingerprint(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789ABCDEF")
        var text = ""
        text.reserveCapacity(bytes.count * 3)
        for (index, byte) in bytes.enumerated() {
            if index > 0 { text.append(":") }
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return text
    }
}

/// A name a TLS client may reach the server by (RFC 5280 §4.2.1.6 GeneralName).
public enum SubjectAltName: Equatable, Hashable, Sendable, CustomStringConvertible {
    /// dNSName, e.g. "rtcam" or "rtcam.local" (ASCII).
    case dns(String)
    /// iPAddress: 4 bytes (IPv4) or 16 (IPv6).
    case ip([UInt8])

    public var description: String {
        switch self {
        case let .dns(name): return "DNS:\(name)"
        case let .ip(bytes) where bytes.count == 4: return "IP:" + bytes.map(String.init).joined(separator: ".")
        case let .ip(bytes): return "IP:" + stride(from: 0, to: bytes.count, by: 2).map {
            String(UInt16(bytes[$0]) << 8 | UInt16(bytes[min($0 + 1, bytes.count - 1)]), radix: 16)
        }.joined(separator: ":")
        }
    }

    /// GeneralNames (a SEQUENCE of [2] dNSName IA5String / [7] iPAddress OCTET STRING), DER.
    static func generalNamesDER(_ names: [SubjectAltName]) -> [UInt8] {
        var body: [UInt8] = []
        for name in names {
            switch name {
            case let .dns(text):
                let bytes = Array(text.utf8)
                body += [0x82] + X509Encoding.length(bytes.count) + bytes
            case let .ip(bytes):
                body += [0x87] + X509Encoding.length(bytes.count) + bytes
            }
        }
        return [0x30] + X509Encoding.length(body.count) + body
    }
}
