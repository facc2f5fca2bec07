// The server end of TLS for the HTTPS server (RFC 5246; RFC 8446 where the library has it): one
// `TLSServerContext` (the parsed certificate chain and key, the shared mbedTLS configuration, the
// session-ticket key) serves every connection, a `TLSConnection(.server(context))` each. Both
// live on one thread (the server's event loop): mbedTLS here is built without threading support.
internal import CMbedTLS
import RTCBase

/// The server side shared by all connections.
public final class TLSServerContext {
    let configuration: TLSConfiguration
    private let chain: UnsafeMutablePointer<mbedtls_x509_crt>
    private let key: UnsafeMutablePointer<mbedtls_pk_context>
    private let tickets: UnsafeMutablePointer<mbedtls_ssl_ticket_context>
    /// SHA-256 of the first certificate's DER: what the log and the page show, so a user can check
    /// a browser's warning about a self-signed certificate.
    public let fingerprintSHA256: [UInt8]

    /// `pem`: the private key and the certificate chain (leaf first), in any order of key and chain.
    public init(pem: String, random: inout some RandomNumberGenerator) throws(DTLSError) {
        configuration = try TLSConfiguration(endpoint: MBEDTLS_SSL_IS_SERVER, random: &random)
        let config = configuration.config, drbg = configuration.drbg
        chain = .allocate(capacity: 1)
        key = .allocate(capacity: 1)
        tickets = .allocate(capacity: 1)
        mbedtls_x509_crt_init(chain)
        mbedtls_pk_init(key)
        mbedtls_ssl_ticket_init(tickets)

        var buffer = Array(pem.utf8)
        buffer.append(0)  // PEM is parsed from NUL-terminated buffers only
        defer { for index in buffer.indices { buffer[index] = 0 } }
        var rc = rtcam_mbedtls_pk_parse_key(key, buffer, buffer.count, mbedtls_ctr_drbg_random, drbg.rngContext)
        if rc != 0 { throw DTLSError.invalidCertificate("private key: \(mbedErrorDescription(rc))") }
        guard rtcam_tls_key_is_ec(key) != 0 else {
            throw DTLSError.invalidCertificate("HTTPS needs an ECDSA certificate (P-256 or P-384): rtcam offers only ECDHE-ECDSA suites; this key is RSA")
        }
        rc = mbedtls_x509_crt_parse(chain, buffer, buffer.count)
        if rc != 0 { throw DTLSError.invalidCertificate("certificate: \(mbedErrorDescription(rc))") }
        rc = rtcam_mbedtls_pk_check_pair(&chain.pointee.pk, key, mbedtls_ctr_drbg_random, drbg.rngContext)
        if rc != 0 { throw DTLSError.invalidCertificate("key does not match the first certificate: \(mbedErrorDescription(rc))") }
        guard let der = chain.pointee.raw.p, chain.pointee.raw.len > 0 else { throw DTLSError.invalidCertificate("empty certificate") }
        fingerprintSHA256 = MbedDigest.sha256(Array(UnsafeBufferPointer(start: der, count: chain.pointee.raw.len)))

        mbedtls_ssl_conf_ciphersuites(config, rtcam_tls_ciphersuites())
        mbedtls_ssl_conf_authmode(config, MBEDTLS_SSL_VERIFY_NONE)  // browsers present no client certificate
        try check(mbedtls_ssl_conf_own_cert(config, chain, key), "mbedtls_ssl_conf_own_cert")
        try check(rtcam_tls_conf_tickets(config, tickets, mbedtls_ctr_drbg_random, drbg.rngContext), "mbedtls_ssl_ticket_setup")
    }

    deinit {
        mbedtls_ssl_ticket_free(tickets)
        mbedtls_x509_crt_free(chain)
        mbedtls_pk_free(key)
        tickets.deallocate()
        chain.deallocate()
        key.deallocate()
    }
}
