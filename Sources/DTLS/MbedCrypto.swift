// The mbedTLS crypto and X.509 touch points of the DTLS target: the deterministic DRBG, error
// text, digests, PBKDF2, and certificate generation/parsing. The SSL touch points live in
// DTLSEndpoint.swift. Calls whose spelling differs between mbedTLS 2.28 and 3.6 (sha256_ret,
// pk_parse_key/pk_sign/pk_check_pair with an RNG, raw serials, private fields) go through the
// rtcam_mbedtls_* functions of CMbedTLS/shim.h, the one place that knows the version.
internal import CMbedTLS
import RTCBase

// MARK: - Library set-up

/// rtcam_mbedtls_initialize's result, computed once per process (3.x: psa_crypto_init).
private let mbedTLSInitializationResult: Int32 = rtcam_mbedtls_initialize()

/// Call before the first handshake or certificate operation.
func initializeMbedTLS() throws(DTLSError) {
    try check(mbedTLSInitializationResult, "psa_crypto_init")
}

/// The mbedTLS version rtcam was compiled against, e.g. "3.6.6" (0x03060600).
public var mbedTLSVersion: String {
    let number = rtcam_mbedtls_version_number()
    return "\(number >> 24).\((number >> 16) & 0xFF).\((number >> 8) & 0xFF)"
}

// MARK: - Error text

/// The mbedtls_strerror text for a negative mbedTLS error code.
func mbedErrorDescription(_ code: Int32) -> String {
    var buffer = [CChar](repeating: 0, count: 160)
    buffer.withUnsafeMutableBufferPointer { mbedtls_strerror(code, $0.baseAddress, $0.count) }
    let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}

extension DTLSError {
    static func library(_ code: Int32, _ function: StaticString) -> DTLSError {
        .library(code: code, function: "\(function)", description: mbedErrorDescription(code))
    }
}

/// Throws `.library` for a negative return code.
@inline(__always)
func check(_ code: Int32, _ function: StaticString) throws(DTLSError) {
    if code < 0 { throw DTLSError.library(code, function) }
}

// MARK: - Deterministic random bit generator

/// A CTR-DRBG seeded only from bytes the caller's `RandomNumberGenerator` supplied: no
/// /dev/urandom, so a test with `SeededRandom` produces the same keys every run.
final class SeededDRBG {
    let context: UnsafeMutablePointer<mbedtls_ctr_drbg_context>
    /// Entropy handed to mbedtls_ctr_drbg_seed (entropy input + nonce, NIST SP 800-90A §10.2.1.3).
    private var pool: [UInt8]
    private var poolOffset = 0

    init(random: inout some RandomNumberGenerator) throws(DTLSError) {
        context = .allocate(capacity: 1)
        mbedtls_ctr_drbg_init(context)
        pool = random.bytes(128)
        let entropy: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<UInt8>?, Int) -> Int32 = {
            opaque, output, length in
            guard let opaque, let output else { return MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED }
            let drbg = Unmanaged<SeededDRBG>.fromOpaque(opaque).takeUnretainedValue()
            return drbg.takeEntropy(into: output, length: length)
        }
        let personalization: [UInt8] = Array("rtcam-dtls".utf8)
        let rc = mbedtls_ctr_drbg_seed(
            context, entropy, Unmanaged.passUnretained(self).toOpaque(), personalization, personalization.count)
        // The pool is sized for one seeding; never reseed from it (a reseed would fail cleanly,
        // but 2^31 requests never happen in a DTLS handshake).
        mbedtls_ctr_drbg_set_reseed_interval(context, Int32.max)
        try check(rc, "mbedtls_ctr_drbg_seed")
    }

    private func takeEntropy(into output: UnsafeMutablePointer<UInt8>, length: Int) -> Int32 {
        guard length <= pool.count - poolOffset else { return MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED }
        for i in 0..<length { output[i] = pool[poolOffset + i] }
        for i in poolOffset..<poolOffset + length { pool[i] = 0 }
        poolOffset += length
        return 0
    }

    /// The f_rng/p_rng pair mbedTLS functions take.
    var rngFunction: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<UInt8>?, Int) -> Int32 {
        mbedtls_ctr_drbg_random
    }
    var rngContext: UnsafeMutableRawPointer { UnsafeMutableRawPointer(context) }

    deinit {
        mbedtls_ctr_drbg_free(context)
        context.deallocate()
    }
}

// MARK: - Digests

public enum MbedDigest {
    /// SHA-256 (FIPS 180-4), e.g. certificate fingerprints (RFC 8122 §5).
    public static func sha256(_ data: [UInt8]) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: 32)
        let rc = data.withUnsafeBufferPointer { input in
            output.withUnsafeMutableBufferPointer { out in
                rtcam_mbedtls_sha256(input.baseAddress, input.count, out.baseAddress)
            }
        }
        precondition(rc == 0, "SHA-256 cannot fail on a memory buffer")
        return output
    }

    /// PBKDF2 with HMAC-SHA-256 (RFC 8018 §5.2). `iterations` ≥ 1; `length` bytes of output.
    public static func pbkdf2HMACSHA256(password: [UInt8], salt: [UInt8], iterations: Int, length: Int) -> [UInt8] {
        precondition(iterations >= 1 && iterations <= Int(UInt32.max), "PBKDF2 needs 1...2^32-1 iterations")
        precondition(length >= 0 && length <= Int(UInt32.max), "PBKDF2 output length out of range")
        if length == 0 { return [] }
        var output = [UInt8](repeating: 0, count: length)
        let rc = password.withUnsafeBufferPointer { pw in
            salt.withUnsafeBufferPointer { s in
                output.withUnsafeMutableBufferPointer { out in
                    rtcam_mbedtls_pbkdf2_hmac_sha256(
                        pw.baseAddress, pw.count, s.baseAddress, s.count,
                        UInt32(iterations), UInt32(length), out.baseAddress)
                }
            }
        }
        precondition(rc == 0, "PBKDF2-HMAC-SHA-256 failed: \(mbedErrorDescription(rc))")
        return output
    }
}

// MARK: - Certificates

/// Generates an ECDSA P-256 key and a self-signed X.509 v3 certificate (RFC 8827 §6.5: WebRTC
/// endpoints authenticate with self-signed certificates bound by their SDP fingerprint,
/// RFC 8122 §5). Returns the key PEM followed by the certificate PEM.
/// With `subjectAltNames` (an HTTPS certificate) the certificate also carries them (RFC 5280
/// §4.2.1.6) and extendedKeyUsage serverAuth, which browsers and TLS clients match the host against.
func generateSelfSignedPEM(commonName: String, subjectAltNames: [SubjectAltName] = [],
                           random: inout some RandomNumberGenerator) throws(DTLSError) -> String {
    try initializeMbedTLS()
    let drbg = try SeededDRBG(random: &random)

    var key = mbedtls_pk_context()
    mbedtls_pk_init(&key)
    defer { mbedtls_pk_free(&key) }
    try check(mbedtls_pk_setup(&key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)), "mbedtls_pk_setup")
    guard let keypair = rtcam_mbedtls_pk_ec_keypair(&key) else {
        throw DTLSError.invalidCertificate("mbedtls_pk_setup gave no EC key pair")
    }
    try check(mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, keypair, drbg.rngFunction, drbg.rngContext),
              "mbedtls_ecp_gen_key")

    var writer = mbedtls_x509write_cert()
    mbedtls_x509write_crt_init(&writer)
    defer { mbedtls_x509write_crt_free(&writer) }
    mbedtls_x509write_crt_set_version(&writer, MBEDTLS_X509_CRT_VERSION_3)
    mbedtls_x509write_crt_set_md_alg(&writer, MBEDTLS_MD_SHA256)
    mbedtls_x509write_crt_set_subject_key(&writer, &key)
    mbedtls_x509write_crt_set_issuer_key(&writer, &key)
    let name = "CN=" + sanitizedCommonName(commonName)
    try check(mbedtls_x509write_crt_set_subject_name(&writer, name), "mbedtls_x509write_crt_set_subject_name")
    try check(mbedtls_x509write_crt_set_issuer_name(&writer, name), "mbedtls_x509write_crt_set_issuer_name")
    // RFC 5280 §4.1.2.2: a positive serial of at most 20 octets.
    var serialBytes = random.bytes(16)
    serialBytes[0] = (serialBytes[0] & 0x7F) | 0x01
    try check(rtcam_mbedtls_x509write_crt_set_serial(&writer, serialBytes, serialBytes.count),
              "mbedtls_x509write_crt_set_serial")
    try check(mbedtls_x509write_crt_set_validity(&writer, "20240101000000", "20340101000000"),
              "mbedtls_x509write_crt_set_validity")
    try check(mbedtls_x509write_crt_set_basic_constraints(&writer, 0, -1),
              "mbedtls_x509write_crt_set_basic_constraints")
    if !subjectAltNames.isEmpty {
        let names = SubjectAltName.generalNamesDER(subjectAltNames)
        try check(rtcam_x509write_crt_set_subject_alt_names(&writer, names, names.count), "mbedtls_x509write_crt_set_extension")
        try check(rtcam_x509write_crt_set_server_auth(&writer), "mbedtls_x509write_crt_set_extension")
    }

    // mbedtls_x509write_crt_der writes at the end of the buffer and returns the length.
    var derBuffer = [UInt8](repeating: 0, count: 4096)
    let derLength = mbedtls_x509write_crt_der(&writer, &derBuffer, derBuffer.count, drbg.rngFunction, drbg.rngContext)
    guard derLength > 0 else { throw DTLSError.library(derLength, "mbedtls_x509write_crt_der") }
    let written = Array(derBuffer[(derBuffer.count - Int(derLength))...])
    // Re-sign without the NULL parameters mbedTLS 2.28 adds (RFC 5758 §3.2; see X509Encoding).
    guard let der = X509Encoding.certificateWithoutNullParameters(written, sign: { tbs in
        var hash = MbedDigest.sha256(tbs)
        var signature = [UInt8](repeating: 0, count: 160)  // MBEDTLS_ECDSA_MAX_LEN is 141
        var signatureLength = 0
        let rc = rtcam_mbedtls_pk_sign(&key, MBEDTLS_MD_SHA256, &hash, hash.count, &signature, signature.count,
                                       &signatureLength, drbg.rngFunction, drbg.rngContext)
        return rc == 0 ? Array(signature[0..<signatureLength]) : nil
    }) else {
        throw DTLSError.invalidCertificate("could not rebuild the certificate mbedTLS wrote")
    }
    var certificatePEM = [UInt8](repeating: 0, count: 4096)
    var pemLength = 0
    try check(mbedtls_pem_write_buffer("-----BEGIN CERTIFICATE-----\n", "-----END CERTIFICATE-----\n",
                                       der, der.count, &certificatePEM, certificatePEM.count, &pemLength),
              "mbedtls_pem_write_buffer")
    var keyPEM = [UInt8](repeating: 0, count: 2048)
    try check(mbedtls_pk_write_key_pem(&key, &keyPEM, keyPEM.count), "mbedtls_pk_write_key_pem")
    let keyText = String(decoding: keyPEM.prefix { $0 != 0 }, as: UTF8.self)
    let certificateText = String(decoding: certificatePEM.prefix { $0 != 0 }, as: UTF8.self)
    keyPEM.withUnsafeMutableBufferPointer { buffer in
        for i in buffer.indices { buffer[i] = 0 }
    }
    return keyText + certificateText
}

/// Keeps the characters an X.509 name string can carry without escaping.
private func sanitizedCommonName(_ name: String) -> String {
    let kept = name.unicodeScalars.filter { scalar in
        switch scalar {
        case "a"..."z", "A"..."Z", "0"..."9", "-", ".", "_", " ": return true
        default: return false
        }
    }
    let result = String(String.UnicodeScalarView(kept.prefix(64)))
    return result.isEmpty ? "rtcam" : result
}

/// Parses "key PEM + certificate PEM", checks that the key belongs to the (first) certificate and
/// returns the certificate's DER.
func parseKeyAndCertificate(pem: String) throws(DTLSError) -> [UInt8] {
    try initializeMbedTLS()
    // 3.x blinds the key checks with an RNG; these bytes only mask, they make no key.
    var blindingSeed = SystemRandomNumberGenerator()
    let drbg = try SeededDRBG(random: &blindingSeed)
    var buffer = Array(pem.utf8)
    buffer.append(0)  // mbedTLS parses PEM only from NUL-terminated buffers (length includes the NUL)
    defer { for i in buffer.indices { buffer[i] = 0 } }

    var key = mbedtls_pk_context()
    mbedtls_pk_init(&key)
    defer { mbedtls_pk_free(&key) }
    var rc = rtcam_mbedtls_pk_parse_key(&key, buffer, buffer.count, drbg.rngFunction, drbg.rngContext)
    if rc != 0 { throw DTLSError.invalidCertificate("private key: \(mbedErrorDescription(rc))") }

    var certificate = mbedtls_x509_crt()
    mbedtls_x509_crt_init(&certificate)
    defer { mbedtls_x509_crt_free(&certificate) }
    rc = mbedtls_x509_crt_parse(&certificate, buffer, buffer.count)
    if rc != 0 { throw DTLSError.invalidCertificate("certificate: \(mbedErrorDescription(rc))") }
    rc = rtcam_mbedtls_pk_check_pair(&certificate.pk, &key, drbg.rngFunction, drbg.rngContext)
    if rc != 0 { throw DTLSError.invalidCertificate("key does not match certificate: \(mbedErrorDescription(rc))") }
    guard let der = certificate.raw.p, certificate.raw.len > 0 else {
        throw DTLSError.invalidCertificate("empty certificate")
    }
    return Array(UnsafeBufferPointer(start: der, count: certificate.raw.len))
}

/// Whether a certificate's signature verifies with its own public key (a self-signed certificate
/// that was re-signed by `X509Encoding` must still be consistent).
func certificateSelfSignatureIsValid(_ der: [UInt8]) -> Bool {
    var certificate = mbedtls_x509_crt()
    mbedtls_x509_crt_init(&certificate)
    defer { mbedtls_x509_crt_free(&certificate) }
    guard mbedtls_x509_crt_parse_der(&certificate, der, der.count) == 0, let tbs = certificate.tbs.p,
          let signature = rtcam_mbedtls_x509_crt_signature(&certificate)?.pointee, let signatureBytes = signature.p
    else { return false }
    let hash = MbedDigest.sha256(Array(UnsafeBufferPointer(start: tbs, count: certificate.tbs.len)))
    return mbedtls_pk_verify(&certificate.pk, MBEDTLS_MD_SHA256, hash, hash.count, signatureBytes, signature.len) == 0
}
