// TLS client (RFC 5246; RFC 8446 where the library has it) for rtcam's own connections out, such
// as `turns:` to a TURN server (RFC 8656 §3.1). Sans-IO like TLSServerConnection: ciphertext bytes
// in, ciphertext and plaintext out; the owner moves them to and from its socket. The server's
// certificate is verified against the trusted CAs of the context and the name the owner dialled.
internal import CMbedTLS
import RTCBase

/// The trusted CAs and the shared client configuration. One per server configuration.
public final class TLSClientContext: @unchecked Sendable {  // used under its owner's lock only
    let config: UnsafeMutablePointer<mbedtls_ssl_config>
    private let trusted: UnsafeMutablePointer<mbedtls_x509_crt>
    private let drbg: SeededDRBG
    /// How many CA certificates were read (a bundle may hold some mbedTLS cannot parse: skipped).
    public let trustedCertificateCount: Int

    /// The system's CA bundle on Debian (ca-certificates).
    public static let systemCABundlePath = "/etc/ssl/certs/ca-certificates.crt"

    /// `trustedPEM`: one or more CA certificates (PEM), e.g. the system bundle or a private CA.
    public init(trustedPEM: [UInt8], random: inout some RandomNumberGenerator) throws(DTLSError) {
        try initializeMbedTLS()
        drbg = try SeededDRBG(random: &random)
        config = .allocate(capacity: 1)
        trusted = .allocate(capacity: 1)
        mbedtls_ssl_config_init(config)
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
        try check(mbedtls_ssl_config_defaults(config, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                              MBEDTLS_SSL_PRESET_DEFAULT), "mbedtls_ssl_config_defaults")
        rtcam_tls_conf_versions(config)
        mbedtls_ssl_conf_rng(config, mbedtls_ctr_drbg_random, drbg.rngContext)
        // The library's default suites (RSA and ECDSA certificates alike: a public TURN server's
        // certificate is often RSA), and the server must prove it holds a trusted one.
        mbedtls_ssl_conf_authmode(config, MBEDTLS_SSL_VERIFY_REQUIRED)
        mbedtls_ssl_conf_ca_chain(config, trusted, nil)
    }

    deinit {
        mbedtls_ssl_config_free(config)
        mbedtls_x509_crt_free(trusted)
        config.deallocate()
        trusted.deallocate()
    }
}

/// Why a client connection ended.
public enum TLSClientFailure: Error, Equatable, Sendable, CustomStringConvertible {
    /// The server's certificate is not trusted for the name dialled: mbedTLS's reasons, e.g.
    /// "The certificate is not correctly signed by the trusted CA".
    case untrustedCertificate(String)
    /// Any other handshake or record error.
    case library(DTLSError)

    public var description: String {
        switch self {
        case let .untrustedCertificate(reasons): return "the server's certificate is not trusted: \(reasons)"
        case let .library(.library(_, function, description)): return "\(function): \(description)"
        case let .library(error): return "\(error)"
        }
    }
}

public enum TLSClientEvent: Equatable, Sendable {
    /// The handshake is done and the certificate verified: "TLSv1.2" / "TLSv1.3" and the suite.
    case established(version: String, ciphersuite: String)
    /// The server sent close_notify.
    case closed
    case failed(TLSClientFailure)
}

/// One connection to a server, client side. The ClientHello is made at once (`takeTransmit`).
public final class TLSClientConnection {
    private let context: TLSClientContext
    private let ssl: UnsafeMutablePointer<mbedtls_ssl_context>
    private var inbound: [UInt8] = []
    private var inboundHead = 0
    private var outbound: [UInt8] = []
    private var plaintext: [UInt8] = []
    private var pendingWrites: [UInt8] = []
    private var events: [TLSClientEvent] = []
    public private(set) var isEstablished = false
    public private(set) var isFinished = false

    /// `serverName`: the host name (or IP literal) dialled, sent as SNI (RFC 6066 §3, not for an IP)
    /// and matched against the certificate's names.
    public init(context: TLSClientContext, serverName: String) throws(DTLSError) {
        self.context = context
        ssl = .allocate(capacity: 1)
        mbedtls_ssl_init(ssl)
        do {
            try check(mbedtls_ssl_setup(ssl, context.config), "mbedtls_ssl_setup")
            try check(mbedtls_ssl_set_hostname(ssl, serverName), "mbedtls_ssl_set_hostname")
        } catch {
            mbedtls_ssl_free(ssl)
            ssl.deallocate()
            throw error
        }
        let opaqueSelf = Unmanaged.passUnretained(self).toOpaque()
        mbedtls_ssl_set_bio(ssl, opaqueSelf, { opaque, buffer, length in
            guard let opaque, let buffer else { return MBEDTLS_ERR_SSL_INTERNAL_ERROR }
            let connection = Unmanaged<TLSClientConnection>.fromOpaque(opaque).takeUnretainedValue()
            connection.outbound.append(contentsOf: UnsafeBufferPointer(start: buffer, count: length))
            return Int32(clamping: length)
        }, { opaque, buffer, length in
            guard let opaque, let buffer else { return MBEDTLS_ERR_SSL_INTERNAL_ERROR }
            let connection = Unmanaged<TLSClientConnection>.fromOpaque(opaque).takeUnretainedValue()
            return connection.takeInbound(into: buffer, capacity: length)
        }, nil)
        advance()
    }

    deinit {
        mbedtls_ssl_free(ssl)
        ssl.deallocate()
    }

    /// Bytes from the server: advances the handshake or decrypts records.
    public func receive(_ bytes: some Collection<UInt8>) {
        guard !isFinished else { return }
        inbound.append(contentsOf: bytes)
        advance()
        if inboundHead == inbound.count {
            inbound.removeAll(keepingCapacity: true)
            inboundHead = 0
        }
    }

    /// Plaintext to send: encrypted at once once the handshake is done, queued before.
    public func send(_ bytes: [UInt8]) {
        guard !isFinished else { return }
        pendingWrites.append(contentsOf: bytes)
        if isEstablished { flushWrites() }
    }

    /// Plaintext queued before the handshake finished (bytes not yet encrypted).
    public var queuedPlaintextCount: Int { pendingWrites.count }

    public func close() {
        guard !isFinished else { return }
        if isEstablished {
            flushWrites()
            _ = mbedtls_ssl_close_notify(ssl)
        }
        isFinished = true
    }

    /// Ciphertext to write to the socket (everything made since the last call).
    public func takeTransmit() -> [UInt8] {
        defer { outbound.removeAll(keepingCapacity: true) }
        return outbound
    }

    /// Decrypted application data (everything since the last call).
    public func takePlaintext() -> [UInt8] {
        defer { plaintext.removeAll(keepingCapacity: true) }
        return plaintext
    }

    public func takeEvents() -> [TLSClientEvent] {
        defer { events.removeAll() }
        return events
    }

    // MARK: - Internals

    private func advance() {
        if !isEstablished {
            let rc = mbedtls_ssl_handshake(ssl)
            if rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE { return }
            guard rc == 0 else {
                let flags = mbedtls_ssl_get_verify_result(ssl)
                if rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED || (flags != 0 && flags != UInt32.max) {
                    isFinished = true
                    events.append(.failed(.untrustedCertificate(Self.verificationReasons(flags))))
                    return
                }
                return fail(rc, "mbedtls_ssl_handshake")
            }
            isEstablished = true
            let version = rtcam_tls_version(ssl).map { String(cString: $0) } ?? "?"
            let suite = rtcam_tls_ciphersuite(ssl).map { String(cString: $0) } ?? "?"
            events.append(.established(version: version, ciphersuite: suite))
            flushWrites()
        }
        readRecords()
    }

    /// mbedtls_x509_crt_verify_info's lines, joined with "; ".
    static func verificationReasons(_ flags: UInt32) -> String {
        var buffer = [CChar](repeating: 0, count: 512)
        _ = buffer.withUnsafeMutableBufferPointer { mbedtls_x509_crt_verify_info($0.baseAddress, $0.count, "", flags) }
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        // drop(while:), not trimmingPrefix(while:): that one is _StringProcessing's and links all of
        // it and _RegexParser (1.7 MB; Tests/check-footprint.sh).
        let lines = text.split(separator: "\n").map { $0.drop(while: { $0 == " " }) }
        return lines.isEmpty ? "verification flags \(flags)" : lines.joined(separator: "; ")
    }

    private func readRecords() {
        var buffer = [UInt8](repeating: 0, count: 16_384)
        while !isFinished {
            let rc = buffer.withUnsafeMutableBufferPointer { mbedtls_ssl_read(ssl, $0.baseAddress, $0.count) }
            if rc > 0 {
                plaintext.append(contentsOf: buffer[0..<Int(rc)])
                continue
            }
            switch rc {
            case MBEDTLS_ERR_SSL_WANT_READ, MBEDTLS_ERR_SSL_WANT_WRITE:
                return
            case tlsClientReceivedNewSessionTicket:  // TLS 1.3 (3.6): a ticket arrived; reading goes on
                continue
            case 0, MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY:
                isFinished = true
                events.append(.closed)
                return
            default:
                return fail(rc, "mbedtls_ssl_read")
            }
        }
    }

    private func flushWrites() {
        var offset = 0
        while offset < pendingWrites.count {
            let rc = pendingWrites.withUnsafeBufferPointer { buffer in
                mbedtls_ssl_write(ssl, buffer.baseAddress! + offset, buffer.count - offset)
            }
            if rc > 0 { offset += Int(rc); continue }
            if rc == MBEDTLS_ERR_SSL_WANT_WRITE || rc == MBEDTLS_ERR_SSL_WANT_READ { break }
            pendingWrites.removeAll()
            return fail(rc, "mbedtls_ssl_write")
        }
        pendingWrites.removeFirst(offset)
    }

    private func fail(_ code: Int32, _ function: StaticString) {
        isFinished = true
        events.append(.failed(.library(.library(code, function))))
    }

    private func takeInbound(into buffer: UnsafeMutablePointer<UInt8>, capacity: Int) -> Int32 {
        let available = inbound.count - inboundHead
        guard available > 0 else { return MBEDTLS_ERR_SSL_WANT_READ }
        let count = min(available, capacity)
        inbound.withUnsafeBufferPointer { source in
            buffer.update(from: source.baseAddress! + inboundHead, count: count)
        }
        inboundHead += count
        return Int32(count)
    }
}

/// MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET (3.x only; a value no 2.28 call returns).
private let tlsClientReceivedNewSessionTicket: Int32 = -0x7B00
