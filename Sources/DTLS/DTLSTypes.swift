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
