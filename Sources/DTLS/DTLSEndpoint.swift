// The mbedTLS SSL touch points: a sans-IO DTLS 1.2 endpoint (RFC 6347) with DTLS-SRTP (RFC 5764)
// and fingerprint-bound self-signed certificates (RFC 8122, RFC 8827 §6.5). Works with mbedTLS 2.28
// and 3.6: the calls that differ go through CMbedTLS/shim.h's rtcam_mbedtls_* functions.
//
// mbedTLS talks to us only through callbacks we install on the context, all of which run inside
// our own calls into mbedTLS on the caller's thread:
//   - BIO send/recv: an outbound datagram queue (drained by `pollTransmit`) and an inbound queue
//     (filled by `receive`); an empty inbound queue is MBEDTLS_ERR_SSL_WANT_READ.
//   - timer set/get: computed from the injected `now`, never from a clock.
//   - the certificate verify callback: accepts self-signed certificates and checks the SDP
//     fingerprint instead of a CA chain.
//   - inside the shim: the key export callback keeps the master secret and randoms for the
//     RFC 5705 exporter.
internal import CMbedTLS
#if canImport(Glibc)
import Glibc
#endif
import RTCBase

public final class DTLSEndpoint {
    /// SRTP profiles the linked mbedTLS can negotiate: those its
    /// mbedtls_ssl_conf_dtls_srtp_protection_profiles accepts, asked once. mbedTLS 2.28 and 3.6
    /// only implement the RFC 5764 §4.1.2 profiles in their use_srtp extension; AEAD_AES_128_GCM
    /// (RFC 7714 §14.2) is refused with -0x7100 by both (measured) and skipped in a peer's offer,
    /// so a browser offering GCM and SHA1_80 gets SHA1_80.
    public static let supportedProfiles: [SRTPProfile] = SRTPProfile.allCases.filter { profile in
        var config = mbedtls_ssl_config()
        mbedtls_ssl_config_init(&config)
        defer { mbedtls_ssl_config_free(&config) }
        let list: [UInt16] = [profile.rawValue, 0]
        return list.withUnsafeBufferPointer {
            mbedtls_ssl_conf_dtls_srtp_protection_profiles(&config, $0.baseAddress) == 0
        }
    }
    /// No datagram we send is larger (mbedtls_ssl_set_mtu).
    public static let maximumDatagramSize = 1200
    /// RFC 6347 §4.2.4.1 retransmission timer: first timeout, doubled up to the maximum; the
    /// handshake fails when the maximum expires (400+800+…+12 800 ms ≈ 25 s, inside ICE consent's 30 s).
    public static let initialRetransmissionTimeout: Duration = .milliseconds(400)
    public static let maximumRetransmissionTimeout: Duration = .milliseconds(12_800)

    public let role: DTLSRole
    /// The profiles we offer (client) or accept (server), in preference order.
    public let profiles: [SRTPProfile]

    private enum State: Equatable { case idle, handshaking, connected, failed, closed }

    private let ssl: UnsafeMutablePointer<mbedtls_ssl_context>
    private let config: UnsafeMutablePointer<mbedtls_ssl_config>
    private let ownCertificate: UnsafeMutablePointer<mbedtls_x509_crt>
    private let ownKey: UnsafeMutablePointer<mbedtls_pk_context>
    private let cookies: UnsafeMutablePointer<mbedtls_ssl_cookie_ctx>
    /// Zero-terminated lists the config points to for its whole life.
    private let ciphersuiteList: UnsafeMutablePointer<Int32>
    private var clientHelloReassembler = ClientHelloReassembler()
    private let srtpProfileList: UnsafeMutablePointer<UInt16>
    private let drbg: SeededDRBG
    private let remoteFingerprint: [UInt8]

    private var state: State = .idle
    private var now: MonotonicTime
    private var timerStart: MonotonicTime
    private var timerIntermediateMilliseconds: UInt32 = 0
    private var timerFinalMilliseconds: UInt32 = 0  // 0: cancelled
    private var inbound: [[UInt8]] = []
    private var inboundHead = 0
    private var outbound: [[UInt8]] = []
    private var outboundHead = 0
    private var events: [DTLSEvent] = []
    private var eventsHead = 0
    private var peerFingerprintRejected = false
    /// What the RFC 5705 exporter needs: the master secret and randoms, kept until the handshake is verified.
    private let exporter: UnsafeMutablePointer<rtcam_mbedtls_exporter>

    /// `remoteFingerprintSHA256`: the 32 bytes of the peer's `a=fingerprint:sha-256`.
    /// `debugLevel` 1...4 prints mbedTLS's own handshake trace to stderr (field debugging; the daemon
    /// takes it from RTCAM_DTLS_DEBUG); 0 prints nothing.
    public init(role: DTLSRole, certificate: DTLSCertificate, remoteFingerprintSHA256: [UInt8],
                profiles: [SRTPProfile] = [.aeadAes128Gcm, .aes128CmHmacSha1_80], now: MonotonicTime,
                random: inout some RandomNumberGenerator, debugLevel: Int32 = 0) throws(DTLSError) {
        let usable = profiles.filter { Self.supportedProfiles.contains($0) }
        guard !usable.isEmpty else { throw DTLSError.unsupportedSRTPProfiles(profiles) }
        try initializeMbedTLS()
        drbg = try SeededDRBG(random: &random)

        self.role = role
        self.profiles = usable
        self.remoteFingerprint = remoteFingerprintSHA256
        self.now = now
        self.timerStart = now
        ssl = .allocate(capacity: 1)
        config = .allocate(capacity: 1)
        ownCertificate = .allocate(capacity: 1)
        ownKey = .allocate(capacity: 1)
        cookies = .allocate(capacity: 1)
        exporter = .allocate(capacity: 1)
        rtcam_mbedtls_exporter_clear(exporter)
        mbedtls_ssl_init(ssl)
        mbedtls_ssl_config_init(config)
        mbedtls_x509_crt_init(ownCertificate)
        mbedtls_pk_init(ownKey)
        mbedtls_ssl_cookie_init(cookies)

        // RFC 8827 §6.5 / RFC 8122 §5: ECDHE for forward secrecy, AEAD first. Chromium (BoringSSL)
        // offers ECDHE-*-AES-GCM and ECDHE-*-AES-CBC-SHA; Firefox (NSS) the same plus ChaCha20.
        // The RSA suites only matter when we are the client and the peer's certificate is RSA
        // (GStreamer's webrtcbin).
        let suites: [Int32] = [
            MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
            MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
            MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256,
            MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, 0,
        ]
        ciphersuiteList = .allocate(capacity: suites.count)
        ciphersuiteList.initialize(from: suites, count: suites.count)
        let profileValues = usable.map(\.rawValue) + [0]  // MBEDTLS_TLS_SRTP_UNSET terminates
        srtpProfileList = .allocate(capacity: profileValues.count)
        srtpProfileList.initialize(from: profileValues, count: profileValues.count)

        try configure(certificate: certificate, debugLevel: debugLevel)
    }

    deinit {
        mbedtls_ssl_free(ssl)
        mbedtls_ssl_config_free(config)
        mbedtls_ssl_cookie_free(cookies)
        mbedtls_x509_crt_free(ownCertificate)
        mbedtls_pk_free(ownKey)
        ssl.deallocate()
        config.deallocate()
        cookies.deallocate()
        ownCertificate.deallocate()
        ownKey.deallocate()
        ciphersuiteList.deallocate()
        srtpProfileList.deallocate()
        rtcam_mbedtls_exporter_clear(exporter)
        exporter.deallocate()
    }

    // MARK: Public API

    /// Client: emits the ClientHello. Server: waits for one (a server also starts on its first datagram).
    public func start(now: MonotonicTime) {
        advanceClock(now)
        guard state == .idle else { return }
        state = .handshaking
        advanceHandshake()
    }

    /// One received datagram holding DTLS records (RFC 7983 §7: first byte 20...63).
    public func receive(_ datagram: [UInt8], now: MonotonicTime) {
        advanceClock(now)
        guard let first = datagram.first, (20...63).contains(first) else { return }
        switch state {
        case .idle:
            guard role == .server else { return }  // a client has not sent its ClientHello yet
            state = .handshaking
        case .handshaking, .connected: break
        case .failed, .closed: return
        }
        let dropClientHellos = role == .server && state == .connected
        guard var records = Self.wholeRecords(of: datagram, droppingClientHellos: dropClientHellos) else { return }
        if role == .server && state == .handshaking {
            records = clientHelloReassembler.process(records)
            guard !records.isEmpty else { return }  // a ClientHello fragment: wait for the rest
        }
        inbound.append(records)
        if state == .handshaking { advanceHandshake() }
        if state == .connected { readRecords() }
        dropConsumedInbound()
    }

    /// Call at `nextDeadline`: retransmits the last flight or gives up (RFC 6347 §4.2.4).
    public func handleTimeout(now: MonotonicTime) {
        advanceClock(now)
        if state == .handshaking { advanceHandshake() }
    }

    /// The next datagram to send, oldest first.
    public func pollTransmit() -> [UInt8]? {
        guard outboundHead < outbound.count else { return nil }
        let datagram = outbound[outboundHead]
        outbound[outboundHead] = []
        outboundHead += 1
        if outboundHead == outbound.count { outbound.removeAll(keepingCapacity: true); outboundHead = 0 }
        return datagram
    }

    public func pollEvent() -> DTLSEvent? {
        guard eventsHead < events.count else { return nil }
        let event = events[eventsHead]
        eventsHead += 1
        if eventsHead == events.count { events.removeAll(keepingCapacity: true); eventsHead = 0 }
        return event
    }

    /// When the handshake retransmission timer expires (nil when none runs). This is mbedTLS's
    /// final delay; its intermediate delay only matters to blocking reads, which we never do.
    public var nextDeadline: MonotonicTime? {
        guard state == .handshaking, timerFinalMilliseconds > 0 else { return nil }
        return timerStart + .milliseconds(Int64(timerFinalMilliseconds))
    }

    public var isConnected: Bool { state == .connected }

    /// Sends close_notify (RFC 5246 §7.2.1) if connected; the endpoint is finished afterwards.
    public func close() {
        if state == .connected {
            _ = mbedtls_ssl_close_notify(ssl)
        }
        if state != .failed { state = .closed }
        rtcam_mbedtls_exporter_clear(exporter)
    }

    /// The largest application data one record carries with the negotiated suite (0 before DTLS
    /// is connected): SCTP over DTLS (RFC 8261) needs each packet in one record.
    public var maximumRecordPayload: Int {
        guard state == .connected else { return 0 }
        return max(0, Int(mbedtls_ssl_get_max_out_record_payload(ssl)))
    }

    /// Encrypts `data` into application_data records (split to fit the MTU).
    public func sendApplicationData(_ data: [UInt8]) throws(DTLSError) {
        guard state == .connected else { throw DTLSError.notConnected }
        let maximum = Int(mbedtls_ssl_get_max_out_record_payload(ssl))
        guard maximum > 0 else { throw DTLSError.library(Int32(maximum), "mbedtls_ssl_get_max_out_record_payload") }
        var offset = 0
        while offset < data.count {
            let length = min(maximum, data.count - offset)
            let written = data.withUnsafeBufferPointer { buffer -> Int32 in
                guard let base = buffer.baseAddress else { return MBEDTLS_ERR_SSL_BAD_INPUT_DATA }
                return mbedtls_ssl_write(ssl, base + offset, length)
            }
            guard written > 0 else { throw DTLSError.library(written, "mbedtls_ssl_write") }
            offset += Int(written)
        }
    }

    /// The datagram's whole DTLS records (RFC 6347 §4.1: 13-byte header, epoch at offset 3,
    /// length at offset 11), nil when none is left. Invalid records are discarded silently
    /// (RFC 6347 §4.1.2.7), and mbedTLS must never see a partial one: mbedTLS 2.28 fails the
    /// connection with MBEDTLS_ERR_SSL_INTERNAL_ERROR when a datagram ends in a partial record header.
    ///
    /// `droppingClientHellos` also removes epoch-0 ClientHello records. A connected mbedTLS server
    /// takes one with a still-valid cookie (a late duplicate of the client's second ClientHello)
    /// as a client reconnecting from the same port (RFC 6347 §4.2.8) and resets the session;
    /// WebRTC never does that (a new session has new ICE credentials and a new endpoint).
    static func wholeRecords(of datagram: [UInt8], droppingClientHellos: Bool) -> [UInt8]? {
        let headerLength = 13
        var kept: [UInt8]? = nil  // built only once a record is removed
        var start = 0
        while datagram.count - start >= headerLength {
            let length = Int(datagram[start + 11]) << 8 | Int(datagram[start + 12])
            guard datagram.count - start - headerLength >= length else { break }
            let end = start + headerLength + length
            let isClientHello = datagram[start] == 22 && datagram[start + 3] == 0 && datagram[start + 4] == 0
                && length > 0 && datagram[start + headerLength] == 1
            if droppingClientHellos && isClientHello {
                if kept == nil { kept = Array(datagram[0..<start]) }
            } else {
                kept?.append(contentsOf: datagram[start..<end])
            }
            start = end
        }
        if let kept { return kept.isEmpty ? nil : kept }
        if start == 0 { return nil }
        return start == datagram.count ? datagram : Array(datagram[0..<start])
    }

    // MARK: Setup

    private func configure(certificate: DTLSCertificate, debugLevel: Int32) throws(DTLSError) {
        let opaqueSelf = Unmanaged.passUnretained(self).toOpaque()
        try check(mbedtls_ssl_config_defaults(
            config, role == .client ? MBEDTLS_SSL_IS_CLIENT : MBEDTLS_SSL_IS_SERVER,
            MBEDTLS_SSL_TRANSPORT_DATAGRAM, MBEDTLS_SSL_PRESET_DEFAULT), "mbedtls_ssl_config_defaults")
        rtcam_mbedtls_ssl_conf_dtls12_only(config)  // RFC 8827 §6.5
        mbedtls_ssl_conf_rng(config, mbedtls_ctr_drbg_random, drbg.rngContext)
        mbedtls_ssl_conf_ciphersuites(config, ciphersuiteList)
        mbedtls_ssl_conf_session_tickets(config, MBEDTLS_SSL_SESSION_TICKETS_DISABLED)
        mbedtls_ssl_conf_handshake_timeout(
            config, UInt32(Self.initialRetransmissionTimeout.nanosecondsClamped / 1_000_000),
            UInt32(Self.maximumRetransmissionTimeout.nanosecondsClamped / 1_000_000))

        // Own key and certificate.
        var pem = Array(certificate.pem.utf8)
        pem.append(0)
        let keyResult = rtcam_mbedtls_pk_parse_key(ownKey, pem, pem.count, mbedtls_ctr_drbg_random, drbg.rngContext)
        for i in pem.indices { pem[i] = 0 }
        if keyResult != 0 { throw DTLSError.invalidCertificate("private key: \(mbedErrorDescription(keyResult))") }
        try check(mbedtls_x509_crt_parse_der(ownCertificate, certificate.certificateDER,
                                             certificate.certificateDER.count), "mbedtls_x509_crt_parse_der")
        try check(mbedtls_ssl_conf_own_cert(config, ownCertificate, ownKey), "mbedtls_ssl_conf_own_cert")

        // Peer certificate: both sides must present one (RFC 8827 §6.5). OPTIONAL makes the
        // server send a CertificateRequest and lets the verify callback accept self-signed
        // certificates; the identity check is the fingerprint (RFC 8122 §5).
        mbedtls_ssl_conf_authmode(config, MBEDTLS_SSL_VERIFY_OPTIONAL)
        mbedtls_ssl_conf_verify(config, { opaque, certificate, depth, flags in
            guard let opaque, let flags else { return MBEDTLS_ERR_X509_FATAL_ERROR }
            let endpoint = Unmanaged<DTLSEndpoint>.fromOpaque(opaque).takeUnretainedValue()
            if depth == 0 {
                guard let certificate, let der = certificate.pointee.raw.p,
                      endpoint.matchesRemoteFingerprint(UnsafeBufferPointer(start: der, count: certificate.pointee.raw.len))
                else {
                    endpoint.peerFingerprintRejected = true
                    return MBEDTLS_ERR_X509_FATAL_ERROR  // aborts the handshake with a fatal alert
                }
            }
            flags.pointee = 0  // self-signed is expected; trust comes from the SDP fingerprint
            return 0
        }, opaqueSelf)

        if debugLevel > 0 {
            mbedtls_debug_set_threshold(min(debugLevel, 4))
            mbedtls_ssl_conf_dbg(config, { _, level, file, line, message in
                guard let file, let message else { return }
                let text = "mbedtls[\(level)] \(String(cString: file)):\(line): \(String(cString: message))"
                _ = text.withCString { write(2, $0, strlen($0)) }
            }, nil)
        }

        // DTLS-SRTP: use_srtp extension (RFC 5764 §4.1.1) and the keying material exporter.
        try check(mbedtls_ssl_conf_dtls_srtp_protection_profiles(config, srtpProfileList),
                  "mbedtls_ssl_conf_dtls_srtp_protection_profiles")

        if role == .server {
            // RFC 6347 §4.2.1: stateless cookie exchange (HelloVerifyRequest) before any state.
            try check(mbedtls_ssl_cookie_setup(cookies, mbedtls_ctr_drbg_random, drbg.rngContext),
                      "mbedtls_ssl_cookie_setup")
            mbedtls_ssl_conf_dtls_cookies(config, mbedtls_ssl_cookie_write, mbedtls_ssl_cookie_check, cookies)
        }

        try check(mbedtls_ssl_setup(ssl, config), "mbedtls_ssl_setup")
        mbedtls_ssl_set_bio(ssl, opaqueSelf, { opaque, buffer, length in
            guard let opaque, let buffer else { return MBEDTLS_ERR_SSL_BAD_INPUT_DATA }
            let endpoint = Unmanaged<DTLSEndpoint>.fromOpaque(opaque).takeUnretainedValue()
            endpoint.outbound.append(Array(UnsafeBufferPointer(start: buffer, count: length)))
            return Int32(clamping: length)
        }, { opaque, buffer, length in
            guard let opaque, let buffer else { return MBEDTLS_ERR_SSL_BAD_INPUT_DATA }
            let endpoint = Unmanaged<DTLSEndpoint>.fromOpaque(opaque).takeUnretainedValue()
            return endpoint.takeInbound(into: buffer, capacity: length)
        }, nil)
        mbedtls_ssl_set_timer_cb(ssl, opaqueSelf, { opaque, intermediate, final in
            guard let opaque else { return }
            let endpoint = Unmanaged<DTLSEndpoint>.fromOpaque(opaque).takeUnretainedValue()
            endpoint.timerStart = endpoint.now
            endpoint.timerIntermediateMilliseconds = intermediate
            endpoint.timerFinalMilliseconds = final
        }, { opaque in
            guard let opaque else { return -1 }
            return Unmanaged<DTLSEndpoint>.fromOpaque(opaque).takeUnretainedValue().timerState()
        })
        mbedtls_ssl_set_mtu(ssl, UInt16(Self.maximumDatagramSize))
        rtcam_mbedtls_install_exporter(config, ssl, exporter)
        if role == .server { try setTransportID() }
    }

    /// Each endpoint serves one remote, so the cookie's transport id is a constant (RFC 6347 §4.2.1
    /// binds the cookie to the client's address; the demultiplexer already did that).
    private func setTransportID() throws(DTLSError) {
        let id: [UInt8] = Array("rtcam-peer".utf8)
        try check(mbedtls_ssl_set_client_transport_id(ssl, id, id.count), "mbedtls_ssl_set_client_transport_id")
    }

    // MARK: Callback helpers

    private func takeInbound(into buffer: UnsafeMutablePointer<UInt8>, capacity: Int) -> Int32 {
        guard inboundHead < inbound.count else { return MBEDTLS_ERR_SSL_WANT_READ }
        let datagram = inbound[inboundHead]
        inbound[inboundHead] = []
        inboundHead += 1
        let count = min(datagram.count, capacity)  // a datagram larger than the record buffer is cut
        datagram.withUnsafeBufferPointer { source in
            if let base = source.baseAddress { buffer.update(from: base, count: count) }
        }
        return Int32(count)
    }

    private func dropConsumedInbound() {
        if inboundHead == inbound.count { inbound.removeAll(keepingCapacity: true); inboundHead = 0 }
    }

    /// mbedtls_ssl_get_timer_t: -1 cancelled, 0 running, 1 intermediate passed, 2 final passed.
    private func timerState() -> Int32 {
        guard timerFinalMilliseconds > 0 else { return -1 }
        let elapsed = now - timerStart
        if elapsed >= .milliseconds(Int64(timerFinalMilliseconds)) { return 2 }
        if elapsed >= .milliseconds(Int64(timerIntermediateMilliseconds)) { return 1 }
        return 0
    }

    private func advanceClock(_ time: MonotonicTime) {
        if time > now { now = time }
    }

    private func matchesRemoteFingerprint(_ der: UnsafeBufferPointer<UInt8>) -> Bool {
        let digest = MbedDigest.sha256(Array(der))
        guard digest.count == remoteFingerprint.count else { return false }
        var difference: UInt8 = 0
        for i in digest.indices { difference |= digest[i] ^ remoteFingerprint[i] }
        return difference == 0
    }

    // MARK: State machine

    private func advanceHandshake() {
        while state == .handshaking {
            let result = mbedtls_ssl_handshake(ssl)
            switch result {
            case 0:
                finishHandshake()
            case MBEDTLS_ERR_SSL_WANT_READ, MBEDTLS_ERR_SSL_WANT_WRITE:
                return
            case MBEDTLS_ERR_SSL_HELLO_VERIFY_REQUIRED:
                // The HelloVerifyRequest is out; stay stateless until a ClientHello returns the
                // cookie (RFC 6347 §4.2.1). The reset keeps our inbound queue.
                let reset = mbedtls_ssl_session_reset(ssl)
                if reset != 0 { fail(.library(reset, "mbedtls_ssl_session_reset")); return }
                rtcam_mbedtls_install_exporter(config, ssl, exporter)
                do { try setTransportID() } catch { fail(error); return }
            case MBEDTLS_ERR_SSL_TIMEOUT:
                fail(.handshakeTimeout)
            default:
                fail(peerFingerprintRejected ? .fingerprintMismatch : .library(result, "mbedtls_ssl_handshake"))
            }
        }
    }

    /// The handshake is over: check the peer's identity and the SRTP profile, then export keys.
    private func finishHandshake() {
        guard let peer = mbedtls_ssl_get_peer_cert(ssl), let der = peer.pointee.raw.p, peer.pointee.raw.len > 0 else {
            abort(.missingPeerCertificate, alert: MBEDTLS_SSL_ALERT_MSG_BAD_CERT)
            return
        }
        guard matchesRemoteFingerprint(UnsafeBufferPointer(start: der, count: peer.pointee.raw.len)) else {
            abort(.fingerprintMismatch, alert: MBEDTLS_SSL_ALERT_MSG_BAD_CERT)
            return
        }
        // RFC 5764 §4.1.3: the server picked one profile from the client's list.
        guard let profile = SRTPProfile(rawValue: rtcam_mbedtls_ssl_srtp_profile(ssl)), profiles.contains(profile) else {
            abort(.noCommonSRTPProfile, alert: MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE)
            return
        }
        // RFC 5764 §4.2: keying material = PRF(master_secret, "EXTRACTOR-dtls_srtp",
        // client_random + server_random) (RFC 5705 §4, no context), 2 * (key + salt) bytes.
        var material = [UInt8](repeating: 0, count: profile.keyingMaterialLength)
        let result = rtcam_mbedtls_export_keying_material(exporter, "EXTRACTOR-dtls_srtp", &material, material.count)
        rtcam_mbedtls_exporter_clear(exporter)
        guard result == 0 else {
            abort(.library(result, "mbedtls_ssl_tls_prf"), alert: MBEDTLS_SSL_ALERT_MSG_INTERNAL_ERROR)
            return
        }
        state = .connected
        events.append(.connected(SRTPKeyingMaterial(profile: profile, exported: material)))
        for i in material.indices { material[i] = 0 }
        readRecords()
    }

    /// Delivers application data and close_notify; mbedTLS also answers a retransmitted final
    /// flight from the peer here (RFC 6347 §4.2.4).
    private func readRecords() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while state == .connected {
            let result = mbedtls_ssl_read(ssl, &buffer, buffer.count)
            if result > 0 {
                events.append(.applicationData(Array(buffer[0..<Int(result)])))
                continue
            }
            switch result {
            case 0, MBEDTLS_ERR_SSL_WANT_READ, MBEDTLS_ERR_SSL_WANT_WRITE:
                return
            case MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY:
                state = .closed
                events.append(.closed)
            default:
                fail(.library(result, "mbedtls_ssl_read"))
            }
        }
    }

    private func abort(_ error: DTLSError, alert: Int32) {
        _ = mbedtls_ssl_send_alert_message(ssl, UInt8(MBEDTLS_SSL_ALERT_LEVEL_FATAL), UInt8(alert))
        fail(error)
    }

    private func fail(_ error: DTLSError) {
        guard state != .failed else { return }
        state = .failed
        rtcam_mbedtls_exporter_clear(exporter)
        events.append(.failed(error))
    }
}
