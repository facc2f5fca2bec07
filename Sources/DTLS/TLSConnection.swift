// One TLS connection (RFC 5246; RFC 8446 where the library has it) over memory buffers, for either
// end: ciphertext bytes in, ciphertext and plaintext out; the owner moves them to and from its
// socket. No socket, no clock: mbedTLS's BIO callbacks read from and append to this object's
// buffers. The role is the only difference between the ends: a client (rtcam dialling `turns:`)
// sends the name it dialled (SNI) and verifies the server's certificate against its context's
// trusted CAs and that name; a server (HTTPS) presents its context's certificate and key. The
// connection, its context and mbedTLS live on one thread: mbedTLS here has no threading support.
internal import CMbedTLS
import RTCBase

/// Which end of the connection rtcam is, with what that end needs.
public enum TLSRole {
    /// `serverName`: the host name (or IP literal) dialled, sent as SNI (RFC 6066 §3, not for an IP)
    /// and matched against the certificate's names.
    case client(TLSClientContext, serverName: String)
    case server(TLSServerContext)
}

/// Why a connection ended, if not by close_notify.
public enum TLSFailure: Error, Equatable, Sendable, CustomStringConvertible {
    /// Client: the server's certificate is not trusted for the name dialled; mbedTLS's reasons, e.g.
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

/// What a connection reports besides the bytes it makes.
public enum TLSConnectionEvent: Equatable, Sendable {
    /// The handshake is done (a client: and the certificate verified): "TLSv1.2" / "TLSv1.3" and
    /// the suite's name.
    case established(version: String, ciphersuite: String)
    /// The peer sent close_notify: no more plaintext comes.
    case closed
    /// A handshake or record error; the connection is dead (an alert may be queued to transmit).
    case failed(TLSFailure)
}

/// One TLS connection, either end. A client's ClientHello is made at once (`takeTransmit`).
public final class TLSConnection {
    /// Keeps the context (the configuration, certificates and keys `ssl` points into) alive.
    private let role: TLSRole
    private let ssl: UnsafeMutablePointer<mbedtls_ssl_context>
    /// Ciphertext received, not yet consumed by mbedTLS: `inbound[inboundHead...]`.
    private var inbound: [UInt8] = []
    private var inboundHead = 0
    private var outbound: [UInt8] = []
    private var plaintext: [UInt8] = []
    /// Plaintext to encrypt once the handshake is done (or mbedTLS takes more).
    private var pendingWrites: [UInt8] = []
    private var events: [TLSConnectionEvent] = []
    public private(set) var isEstablished = false
    /// Closed, failed or close_notify received: nothing more is read or written.
    public private(set) var isFinished = false

    public init(_ role: TLSRole) throws(DTLSError) {
        self.role = role
        ssl = .allocate(capacity: 1)
        mbedtls_ssl_init(ssl)
        do {
            switch role {
            case let .client(context, serverName):
                try check(mbedtls_ssl_setup(ssl, context.configuration.config), "mbedtls_ssl_setup")
                try check(mbedtls_ssl_set_hostname(ssl, serverName), "mbedtls_ssl_set_hostname")
            case let .server(context):
                try check(mbedtls_ssl_setup(ssl, context.configuration.config), "mbedtls_ssl_setup")
            }
        } catch {
            mbedtls_ssl_free(ssl)
            ssl.deallocate()
            throw error
        }
        mbedtls_ssl_set_bio(ssl, Unmanaged.passUnretained(self).toOpaque(), { opaque, buffer, length in
            guard let opaque, let buffer else { return MBEDTLS_ERR_SSL_INTERNAL_ERROR }
            let connection = Unmanaged<TLSConnection>.fromOpaque(opaque).takeUnretainedValue()
            connection.outbound.append(contentsOf: UnsafeBufferPointer(start: buffer, count: length))
            return Int32(clamping: length)
        }, { opaque, buffer, length in
            guard let opaque, let buffer else { return MBEDTLS_ERR_SSL_INTERNAL_ERROR }
            let connection = Unmanaged<TLSConnection>.fromOpaque(opaque).takeUnretainedValue()
            return connection.takeInbound(into: buffer, capacity: length)
        }, nil)
        advance()  // a client's first flight; a server waits for one
    }

    deinit {
        mbedtls_ssl_free(ssl)
        ssl.deallocate()
    }

    /// Ciphertext from the peer: advances the handshake or decrypts records.
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

    /// Plaintext queued and not yet encrypted (before the handshake finished).
    public var queuedPlaintextCount: Int { pendingWrites.count }

    /// Sends close_notify (RFC 5246 §7.2.1) after what is queued; nothing more is read or written.
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
            guard rc == 0 else { return failHandshake(rc) }
            isEstablished = true
            let version = rtcam_tls_version(ssl).map { String(cString: $0) } ?? "?"
            let suite = rtcam_tls_ciphersuite(ssl).map { String(cString: $0) } ?? "?"
            events.append(.established(version: version, ciphersuite: suite))
            flushWrites()
        }
        readRecords()
    }

    private func failHandshake(_ rc: Int32) {
        // A client's verification flags; a server asks for no certificate, and its flags say only
        // that (MBEDTLS_X509_BADCERT_SKIP_VERIFY), so they are not looked at.
        if case .client = role {
            let flags = mbedtls_ssl_get_verify_result(ssl)
            if rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED || (flags != 0 && flags != UInt32.max) {
                isFinished = true
                events.append(.failed(.untrustedCertificate(TLSClientContext.verificationReasons(flags))))
                return
            }
        }
        fail(rc, "mbedtls_ssl_handshake")
    }

    private func readRecords() {
        var buffer = [UInt8](repeating: 0, count: 16_384)
        while !isFinished {
            let rc = buffer.withUnsafeMutableBufferPointer { mbedtls_ssl_read(ssl, $0.baseAddress, $0.count) }
            if rc > 0 {
                plaintext.append(contentsOf: buffer[0 ..< Int(rc)])
                continue
            }
            if rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE { return }
            if rtcam_tls_is_new_session_ticket(rc) != 0 { continue }  // TLS 1.3: a ticket came; reading goes on
            if rc == 0 || rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY {
                isFinished = true
                events.append(.closed)
                return
            }
            return fail(rc, "mbedtls_ssl_read")
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

/// The mbedTLS configuration a context shares with all its connections, and the random generator
/// it draws from: what the client and server contexts set up alike.
final class TLSConfiguration {
    let config: UnsafeMutablePointer<mbedtls_ssl_config>
    let drbg: SeededDRBG

    /// `endpoint`: MBEDTLS_SSL_IS_CLIENT or MBEDTLS_SSL_IS_SERVER. TLS 1.2 and later.
    init(endpoint: Int32, random: inout some RandomNumberGenerator) throws(DTLSError) {
        try initializeMbedTLS()
        drbg = try SeededDRBG(random: &random)
        config = .allocate(capacity: 1)
        mbedtls_ssl_config_init(config)
        try check(mbedtls_ssl_config_defaults(config, endpoint, MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT),
                  "mbedtls_ssl_config_defaults")
        rtcam_tls_conf_versions(config)
        mbedtls_ssl_conf_rng(config, mbedtls_ctr_drbg_random, drbg.rngContext)
    }

    deinit {
        mbedtls_ssl_config_free(config)
        config.deallocate()
    }
}
