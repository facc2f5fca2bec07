// TLS for the HTTPS server (RFC 5246; RFC 8446 where the library has it), sans-IO like the DTLS
// endpoint: ciphertext bytes in, ciphertext and plaintext out. One `TLSServerContext` (the parsed
// certificate chain and key, the shared mbedTLS configuration, the session-ticket key) serves every
// connection; each `TLSServerConnection` owns one mbedtls_ssl_context. Both live on one thread (the
// server's event loop): mbedTLS here is built without threading support.
internal import CMbedTLS
import RTCBase

/// The server side shared by all connections.
public final class TLSServerContext {
    let config: UnsafeMutablePointer<mbedtls_ssl_config>
    private let chain: UnsafeMutablePointer<mbedtls_x509_crt>
    private let key: UnsafeMutablePointer<mbedtls_pk_context>
    private let tickets: UnsafeMutablePointer<mbedtls_ssl_ticket_context>
    private let drbg: SeededDRBG
    /// SHA-256 of the first certificate's DER: what the log and the page show, so a user can check
    /// a browser's warning about a self-signed certificate.
    public let fingerprintSHA256: [UInt8]

    /// `pem`: the private key and the certificate chain (leaf first), in any order of key and chain.
    public init(pem: String, random: inout some RandomNumberGenerator) throws(DTLSError) {
        try initializeMbedTLS()
        drbg = try SeededDRBG(random: &random)
        config = .allocate(capacity: 1)
        chain = .allocate(capacity: 1)
        key = .allocate(capacity: 1)
        tickets = .allocate(capacity: 1)
        mbedtls_ssl_config_init(config)
        mbedtls_x509_crt_init(chain)
        mbedtls_pk_init(key)
        mbedtls_ssl_ticket_init(tickets)

        var buffer = Array(pem.utf8)
        buffer.append(0)  // PEM is parsed from NUL-terminated buffers only
        defer { for index in buffer.indices { buffer[index] = 0 } }
        var rc = rtcam_mbedtls_pk_parse_key(key, buffer, buffer.count, mbedtls_ctr_drbg_random, drbg.rngContext)
        if rc != 0 { throw DTLSError.invalidCertificate("private key: \(mbedErrorDescription(rc))") }
        rc = mbedtls_x509_crt_parse(chain, buffer, buffer.count)
        if rc != 0 { throw DTLSError.invalidCertificate("certificate: \(mbedErrorDescription(rc))") }
        rc = rtcam_mbedtls_pk_check_pair(&chain.pointee.pk, key, mbedtls_ctr_drbg_random, drbg.rngContext)
        if rc != 0 { throw DTLSError.invalidCertificate("key does not match the first certificate: \(mbedErrorDescription(rc))") }
        guard let der = chain.pointee.raw.p, chain.pointee.raw.len > 0 else { throw DTLSError.invalidCertificate("empty certificate") }
        fingerprintSHA256 = MbedDigest.sha256(Array(UnsafeBufferPointer(start: der, count: chain.pointee.raw.len)))

        try check(mbedtls_ssl_config_defaults(config, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
                                              MBEDTLS_SSL_PRESET_DEFAULT), "mbedtls_ssl_config_defaults")
        rtcam_tls_conf_versions(config)
        mbedtls_ssl_conf_rng(config, mbedtls_ctr_drbg_random, drbg.rngContext)
        mbedtls_ssl_conf_ciphersuites(config, rtcam_tls_ciphersuites())
        mbedtls_ssl_conf_authmode(config, MBEDTLS_SSL_VERIFY_NONE)  // browsers present no client certificate
        try check(mbedtls_ssl_conf_own_cert(config, chain, key), "mbedtls_ssl_conf_own_cert")
        try check(rtcam_tls_conf_tickets(config, tickets, mbedtls_ctr_drbg_random, drbg.rngContext), "mbedtls_ssl_ticket_setup")
    }

    deinit {
        mbedtls_ssl_ticket_free(tickets)
        mbedtls_ssl_config_free(config)
        mbedtls_x509_crt_free(chain)
        mbedtls_pk_free(key)
        tickets.deallocate()
        config.deallocate()
        chain.deallocate()
        key.deallocate()
    }
}

/// What a connection reports besides the bytes it makes.
public enum TLSConnectionEvent: Equatable, Sendable {
    /// The handshake is done: "TLSv1.2" / "TLSv1.3" and the suite's name.
    case established(version: String, ciphersuite: String)
    /// The client sent close_notify: no more plaintext comes.
    case closed
    /// A handshake or record error; the connection is dead (an alert may be queued to transmit).
    case failed(DTLSError)
}

/// One HTTPS connection, server side.
public final class TLSServerConnection {
    private let context: TLSServerContext
    private let ssl: UnsafeMutablePointer<mbedtls_ssl_context>
    private var inbound: [UInt8] = []
    private var inboundHead = 0
    private var outbound: [UInt8] = []
    private var plaintext: [UInt8] = []
    private var events: [TLSConnectionEvent] = []
    public private(set) var isEstablished = false
    public private(set) var isFinished = false
    private var pendingWrites: [UInt8] = []

    public init(context: TLSServerContext) throws(DTLSError) {
        self.context = context
        ssl = .allocate(capacity: 1)
        mbedtls_ssl_init(ssl)
        do {
            try check(mbedtls_ssl_setup(ssl, context.config), "mbedtls_ssl_setup")
        } catch {
            mbedtls_ssl_free(ssl)
            ssl.deallocate()
            throw error
        }
        let opaqueSelf = Unmanaged.passUnretained(self).toOpaque()
        mbedtls_ssl_set_bio(ssl, opaqueSelf, { opaque, buffer, length in
            guard let opaque, let buffer else { return MBEDTLS_ERR_SSL_INTERNAL_ERROR }
            let connection = Unmanaged<TLSServerConnection>.fromOpaque(opaque).takeUnretainedValue()
            connection.outbound.append(contentsOf: UnsafeBufferPointer(start: buffer, count: length))
            return Int32(clamping: length)
        }, { opaque, buffer, length in
            guard let opaque, let buffer else { return MBEDTLS_ERR_SSL_INTERNAL_ERROR }
            let connection = Unmanaged<TLSServerConnection>.fromOpaque(opaque).takeUnretainedValue()
            return connection.takeInbound(into: buffer, capacity: length)
        }, nil)
    }

    deinit {
        mbedtls_ssl_free(ssl)
        ssl.deallocate()
    }

    /// Bytes from the client: advances the handshake or decrypts records.
    public func receive(_ bytes: [UInt8]) {
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

    /// Sends close_notify (RFC 5246 §7.2.1); nothing more is read or written.
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

    public func takeEvents() -> [TLSConnectionEvent] {
        defer { events.removeAll() }
        return events
    }

    // MARK: - Internals

    private func advance() {
        if !isEstablished {
            let rc = mbedtls_ssl_handshake(ssl)
            if rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE { return }
            guard rc == 0 else { return fail(rc, "mbedtls_ssl_handshake") }
            isEstablished = true
            let version = rtcam_tls_version(ssl).map { String(cString: $0) } ?? "?"
            let suite = rtcam_tls_ciphersuite(ssl).map { String(cString: $0) } ?? "?"
            events.append(.established(version: version, ciphersuite: suite))
            flushWrites()
        }
        readRecords()
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
            // TLS 1.3 (3.6): a ticket the server just sent is reported as this; reading goes on.
            case rtcamTLSReceivedNewSessionTicket:
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
        events.append(.failed(.library(code, function)))
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
private let rtcamTLSReceivedNewSessionTicket: Int32 = -0x7B00
