// The client end of TLS (RFC 5246; RFC 8446 where the library has it) for rtcam's own connections
// out, such as `turns:` to a TURN server (RFC 8656 §3.1): a `TLSConnection(.client(context,
// serverName:))` each. The server's certificate is verified against the trusted CAs of the context
// and the name the owner dialled.
internal import CMbedTLS
import RTCBase

/// The trusted CAs and the shared client configuration. One per server configuration.
public final class TLSClientContext: @unchecked Sendable {  // used under its owner's lock only
    let configuration: TLSConfiguration
    private let trusted: UnsafeMutablePointer<mbedtls_x509_crt>
    /// How many CA certificates were read (a bundle may hold some mbedTLS cannot parse: skipped).
    public let trustedCertificateCount: Int

    /// The system's CA bundle on Debian (ca-certificates).
    public static let systemCABundlePath = "/etc/ssl/certs/ca-certificates.crt"

    /// `trustedPEM`: one or more CA certificates (PEM), e.g. the system bundle or a private CA.
    public init(trustedPEM: [UInt8], random: inout some RandomNumberGenerator) throws(DTLSError) {
        configuration = try TLSConfiguration(endpoint: MBEDTLS_SSL_IS_CLIENT, random: &random)
        trusted = .allocate(capacity: 1)
        mbedtls_x509_crt_init(trusted)
        var buffer = trustedPEM
        if buffer.last != 0 { buffer.append(0) }  // PEM is parsed from NUL-terminated buffers only
        // A positive result: that many certificates of a bundle could not be parsed (kept going).
        let rc = mbedtls_x509_crt_parse(trusted, buffer, buffer.count)
        var count = 0
        var certificate: UnsafeMutablePointer<mbedtls_x509_crt>? = trusted
        while let current = certificate, current.pointee.raw.len > 0 {
            count += 1
            certificate = current.pointee.next
        }
        trustedCertificateCount = count
        guard rc >= 0, count > 0 else {
            throw DTLSError.invalidCertificate("no CA certificate in the trusted PEM" + (rc < 0 ? ": \(mbedErrorDescription(rc))" : ""))
        }
        let config = configuration.config
        // The library's default suites (RSA and ECDSA certificates alike: a public TURN server's
        // certificate is often RSA), and the server must prove it holds a trusted one.
        mbedtls_ssl_conf_authmode(config, MBEDTLS_SSL_VERIFY_REQUIRED)
        mbedtls_ssl_conf_ca_chain(config, trusted, nil)
    }

    deinit {
        mbedtls_x509_crt_free(trusted)
        trusted.deallocate()
    }

    /// Why a server's certificate was refused: mbedtls_x509_crt_verify_info's lines, joined with "; ".
    static func verificationReasons(_ flags: UInt32) -> String {
        var buffer = [CChar](repeating: 0, count: 512)
        _ = buffer.withUnsafeMutableBufferPointer { mbedtls_x509_crt_verify_info($0.baseAddress, $0.count, "", flags) }
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        // drop(while:), not trimmingPrefix(while:): that one is _StringProcessing's and links all of
        // it and _RegexParser (1.7 MB; Tests/check-footprint.sh).
        let lines = text.split(separator: "\n").map { $0.drop(while: { $0 == " " }) }
        return lines.isEmpty ? "verification flags \(flags)" : lines.joined(separator: "; ")
    }
}
