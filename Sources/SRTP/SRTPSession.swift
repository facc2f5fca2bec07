internal import CSRTP
public import RTCBase

/// Everything that can go wrong protecting or unprotecting a packet.
public enum SRTPError: Error, Equatable, Sendable {
    /// The packet's index was already seen or is older than the replay window (RFC 3711 §3.3.2).
    case replayed
    /// The authentication tag did not verify (RFC 3711 §3.3, RFC 7714 §9): forged, corrupted or
    /// protected with other keys.
    case authenticationFailed
    /// Too short, or an RTP header whose CSRC count / extension length runs past the end.
    case malformed
    /// Any other libsrtp status (`srtp_err_status_t`), for logging.
    case library(code: Int32)
}

/// libsrtp wants `srtp_init()` once per process before any `srtp_create`. A global `let` is
/// initialised lazily and exactly once (swift_once), from whichever thread touches it first.
let libraryInitialisationStatus: UInt32 = srtp_init().rawValue

/// One viewer's SRTP/SRTCP state: an outbound context keyed with our master key and salt and an
/// inbound context keyed with the peer's (RFC 5764 §4.2: the DTLS client sends with the client
/// write key, the server with the server write key).
///
/// Not thread-safe: one owner (the peer session) uses it at a time.
public final class SRTPSession {
    public let profile: SRTPProfile
    public let isClient: Bool
    /// Inbound packets dropped because their index was replayed or too old.
    public private(set) var replayedPackets: Int = 0
    /// Inbound packets dropped because their authentication tag did not verify.
    public private(set) var authenticationFailures: Int = 0

    private let outbound: OpaquePointer
    private let inbound: OpaquePointer
    private let tagLength: Int

    /// RFC 3711 §3.3.2: the receiver keeps a sliding window of recently seen indices. 1024 covers
    /// the reordering seen with NACK-driven retransmission at video rates (libsrtp's default is 128).
    private static let replayWindowSize: UInt = 1024
    /// Datagrams larger than this cannot come from UDP; refusing them keeps lengths within `Int32`.
    private static let maximumPacketLength = 65_535
    /// libsrtp may write this many bytes past the RTP packet (`SRTP_MAX_TRAILER_LEN`: tag + MKI).
    private static let rtpTrailerRoom = Int(SRTP_MAX_TAG_LEN) + Int(SRTP_MAX_MKI_LEN)
    /// SRTCP also appends the 32-bit E flag + SRTCP index word (RFC 3711 §3.4).
    private static let rtcpTrailerRoom = rtpTrailerRoom + 4
    private static let rtpFixedHeaderLength = 12   // RFC 3550 §5.1
    private static let rtcpHeaderLength = 8         // RFC 3550 §6.4.1: V/P/RC, PT, length, SSRC
    private static let srtcpIndexLength = 4         // RFC 3711 §3.4

    public init(keys: SRTPKeyingMaterial, isClient: Bool) throws(SRTPError) {
        guard libraryInitialisationStatus == 0 else {
            throw .library(code: Int32(truncatingIfNeeded: libraryInitialisationStatus))
        }
        let expectedKeyLength = keys.profile.masterKeyLength
        let expectedSaltLength = keys.profile.masterSaltLength
        guard keys.clientKey.count == expectedKeyLength, keys.serverKey.count == expectedKeyLength,
              keys.clientSalt.count == expectedSaltLength, keys.serverSalt.count == expectedSaltLength
        else { throw .malformed }

        profile = keys.profile
        self.isClient = isClient
        tagLength = Self.protectionOverhead(keys.profile)

        // RFC 5764 §4.2: client_write_SRTP_master_key/salt protect what the client sends.
        let localKeyAndSalt = isClient ? keys.clientKey + keys.clientSalt : keys.serverKey + keys.serverSalt
        let remoteKeyAndSalt = isClient ? keys.serverKey + keys.serverSalt : keys.clientKey + keys.clientSalt

        let outboundContext = try Self.createContext(
            profile: keys.profile, keyAndSalt: localKeyAndSalt, direction: ssrc_any_outbound)
        let inboundContext: OpaquePointer
        do {
            inboundContext = try Self.createContext(
                profile: keys.profile, keyAndSalt: remoteKeyAndSalt, direction: ssrc_any_inbound)
        } catch {
            _ = srtp_dealloc(outboundContext)
            throw error
        }
        outbound = outboundContext
        inbound = inboundContext
    }

    deinit {
        _ = srtp_dealloc(outbound)
        _ = srtp_dealloc(inbound)
    }

    /// Bytes `protectRTP` adds: the authentication tag (RFC 3711 §3.1: 80-bit HMAC-SHA1 tag,
    /// RFC 7714 §8: 16-octet GCM tag).
    public static func protectionOverhead(_ profile: SRTPProfile) -> Int {
        switch profile {
        case .aes128CmHmacSha1_80: return 10
        case .aeadAes128Gcm: return 16
        }
    }

    /// Bytes `protectRTCP` adds: the tag plus the E flag + SRTCP index word (RFC 3711 §3.4,
    /// RFC 7714 §9).
    public static func rtcpProtectionOverhead(_ profile: SRTPProfile) -> Int {
        protectionOverhead(profile) + srtcpIndexLength
    }

    // MARK: - Packets

    /// Encrypts and authenticates one serialized RTP packet (RFC 3711 §3.3, RFC 7714 §8).
    /// Protecting the same sequence number again (a NACK resend) is allowed and yields the same bytes.
    public func protectRTP(_ packet: [UInt8]) throws(SRTPError) -> [UInt8] {
        guard Self.rtpHeaderLength(packet) != nil, packet.count <= Self.maximumPacketLength
        else { throw .malformed }
        return try transform(packet, extraCapacity: Self.rtpTrailerRoom) { buffer, length in
            srtp_protect(outbound, buffer, length)
        }
    }

    /// `protectRTP` of `packet` with its header rewritten by `rewriteHeader` first (the RTP target
    /// says how: the fan-out's shared packets carry a placeholder payload type that each viewer's
    /// negotiated number replaces), in the one copy libsrtp works on: that saves a copy of every
    /// packet for every viewer. Appended to `output` (a viewer's reused datagram buffer: no
    /// allocation once it has grown). On failure `output` is as it was.
    ///
    /// `headerExtension`: a complete RFC 8285 extension block (profile, length, elements, padding)
    /// to insert after the header's CSRCs, with the X bit set, for a packet that has none (the
    /// viewer's own transport-wide sequence number goes in this way); empty: none.
    public func protectRTP(_ packet: [UInt8], headerExtension: [UInt8] = [], appendingTo output: inout [UInt8],
                           rewritingHeader rewriteHeader: (UnsafeMutableRawBufferPointer) -> Void) throws(SRTPError) {
        guard let headerLength = Self.rtpHeaderLength(packet),
              packet.count + headerExtension.count <= Self.maximumPacketLength
        else { throw .malformed }
        let insertAt = Self.rtpFixedHeaderLength + 4 * Int(packet[0] & 0x0F)
        if !headerExtension.isEmpty {
            // One extension block per packet (RFC 3550 §5.3.1); its length must be whole 32-bit words.
            guard packet[0] & 0x10 == 0, headerExtension.count >= 4, headerExtension.count % 4 == 0,
                  Int(headerExtension[2]) << 8 | Int(headerExtension[3]) == headerExtension.count / 4 - 1
            else { throw .malformed }
        }
        try append(packet, inserting: headerExtension, at: insertAt, extraCapacity: Self.rtpTrailerRoom,
                   to: &output) { base in
            if !headerExtension.isEmpty { base.storeBytes(of: base.load(as: UInt8.self) | 0x10, as: UInt8.self) }
            rewriteHeader(UnsafeMutableRawBufferPointer(start: base, count: headerLength + headerExtension.count))
        } operation: { buffer, length in
            srtp_protect(outbound, buffer, length)
        }
    }

    /// Encrypts and authenticates one (compound) RTCP packet (RFC 3711 §3.4, RFC 7714 §9).
    public func protectRTCP(_ packet: [UInt8]) throws(SRTPError) -> [UInt8] {
        guard packet.count >= Self.rtcpHeaderLength, packet.count <= Self.maximumPacketLength
        else { throw .malformed }
        return try transform(packet, extraCapacity: Self.rtcpTrailerRoom) { buffer, length in
            srtp_protect_rtcp(outbound, buffer, length)
        }
    }

    /// Verifies, replay-checks and decrypts one SRTP packet; returns the plaintext RTP packet.
    public func unprotectRTP(_ packet: [UInt8]) throws(SRTPError) -> [UInt8] {
        // RFC 3711 §3.3: header (authenticated, in the clear) + payload + tag; anything shorter
        // than header + tag cannot be SRTP and is refused before libsrtp sees it.
        guard let headerLength = Self.rtpHeaderLength(packet),
              packet.count >= headerLength + tagLength, packet.count <= Self.maximumPacketLength
        else { throw .malformed }
        return try countingFailures { () throws(SRTPError) -> [UInt8] in
            try transform(packet, extraCapacity: 0) { buffer, length in
                srtp_unprotect(inbound, buffer, length)
            }
        }
    }

    /// Verifies, replay-checks and decrypts one SRTCP packet; returns the plaintext RTCP.
    public func unprotectRTCP(_ packet: [UInt8]) throws(SRTPError) -> [UInt8] {
        // RFC 3711 §3.4: first header word + sender SSRC, payload, E||SRTCP index, tag.
        guard packet.count >= Self.rtcpHeaderLength + Self.srtcpIndexLength + tagLength,
              packet.count <= Self.maximumPacketLength
        else { throw .malformed }
        return try countingFailures { () throws(SRTPError) -> [UInt8] in
            try transform(packet, extraCapacity: 0) { buffer, length in
                srtp_unprotect_rtcp(inbound, buffer, length)
            }
        }
    }

    // MARK: - Internals

    private func countingFailures(_ body: () throws(SRTPError) -> [UInt8]) throws(SRTPError) -> [UInt8] {
        do {
            return try body()
        } catch .replayed {
            replayedPackets += 1
            throw .replayed
        } catch .authenticationFailed {
            authenticationFailures += 1
            throw .authenticationFailed
        }
    }

    /// Copies `packet` into one new array with `extraCapacity` spare bytes, lets libsrtp work on
    /// it in place and trims it to the length libsrtp reports: one allocation per packet.
    private func transform(
        _ packet: [UInt8], extraCapacity: Int,
        _ operation: (UnsafeMutableRawPointer, UnsafeMutablePointer<Int32>) -> srtp_err_status_t
    ) throws(SRTPError) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(packet.count + extraCapacity)
        try append(packet, extraCapacity: extraCapacity, to: &output, rewrite: { _ in }, operation: operation)
        return output
    }

    /// Appends `packet` and `extraCapacity` zero bytes (scratch room for libsrtp's trailer) to
    /// `output`, lets libsrtp transform the packet there in place, and trims the room it did not
    /// use. On failure `output` is as it was.
    private func append(
        _ packet: [UInt8], inserting inserted: [UInt8] = [], at insertAt: Int = 0, extraCapacity: Int,
        to output: inout [UInt8],
        rewrite: (UnsafeMutableRawPointer) -> Void,
        operation: (UnsafeMutableRawPointer, UnsafeMutablePointer<Int32>) -> srtp_err_status_t
    ) throws(SRTPError) {
        let start = output.count
        let room = packet.count + inserted.count + extraCapacity
        if inserted.isEmpty {
            output.append(contentsOf: packet)
        } else {
            output.append(contentsOf: packet[..<insertAt])
            output.append(contentsOf: inserted)
            output.append(contentsOf: packet[insertAt...])
        }
        output.append(contentsOf: repeatElement(0, count: extraCapacity))
        var length = Int32(packet.count + inserted.count)
        let status = output.withUnsafeMutableBufferPointer { buffer in
            let base = UnsafeMutableRawPointer(buffer.baseAddress! + start)
            rewrite(base)
            return operation(base, &length)
        }
        guard status == srtp_err_status_ok, length >= 0, Int(length) <= room else {
            output.removeSubrange(start...)
            throw Self.error(for: status == srtp_err_status_ok ? srtp_err_status_fail : status)
        }
        output.removeSubrange((start + Int(length))...)
    }

    private static func error(for status: srtp_err_status_t) -> SRTPError {
        switch status {
        case srtp_err_status_replay_fail, srtp_err_status_replay_old:
            return .replayed            // RFC 3711 §3.3.2
        case srtp_err_status_auth_fail:
            return .authenticationFailed
        case srtp_err_status_cant_check:
            // SRTCP with the E flag cleared (RFC 3711 §3.4) while our policy requires encryption:
            // libsrtp refuses before checking the tag. A peer keyed by DTLS-SRTP always encrypts,
            // so this is a forged or corrupted packet.
            return .authenticationFailed
        case srtp_err_status_parse_err, srtp_err_status_bad_param:
            return .malformed
        default:
            return .library(code: Int32(truncatingIfNeeded: status.rawValue))
        }
    }

    /// RFC 3550 §5.1 / §5.3.1: 12 fixed bytes + 4 per CSRC + (if X) 4-byte extension header and
    /// its 32-bit words; nil when the packet is shorter than the header it announces.
    static func rtpHeaderLength(_ packet: [UInt8]) -> Int? {
        guard packet.count >= rtpFixedHeaderLength else { return nil }
        let csrcCount = Int(packet[0] & 0x0F)
        let hasExtension = packet[0] & 0x10 != 0
        var length = rtpFixedHeaderLength + 4 * csrcCount
        if hasExtension {
            guard packet.count >= length + 4 else { return nil }
            let words = Int(packet[length + 2]) << 8 | Int(packet[length + 3])
            length += 4 + 4 * words
        }
        return packet.count >= length ? length : nil
    }

    /// RFC 3711 §4.3: libsrtp derives the session keys from the master key followed by the master
    /// salt (30 bytes for AES-CM-128, 28 for AEAD-AES-128-GCM with its 12-byte salt, RFC 7714 §12).
    private static func createContext(
        profile: SRTPProfile, keyAndSalt: [UInt8], direction: srtp_ssrc_type_t
    ) throws(SRTPError) -> OpaquePointer {
        var policy = srtp_policy_t()
        switch profile {
        case .aes128CmHmacSha1_80:
            // RFC 5764 §4.1.2 SRTP_AES128_CM_HMAC_SHA1_80 (RFC 3711 default transforms).
            srtp_crypto_policy_set_rtp_default(&policy.rtp)
            srtp_crypto_policy_set_rtcp_default(&policy.rtcp)
        case .aeadAes128Gcm:
            // RFC 7714 §14.2 SRTP_AEAD_AES_128_GCM: 16-octet tag for both SRTP and SRTCP.
            srtp_crypto_policy_set_aes_gcm_128_16_auth(&policy.rtp)
            srtp_crypto_policy_set_aes_gcm_128_16_auth(&policy.rtcp)
        }
        policy.ssrc = srtp_ssrc_t(type: direction, value: 0)
        policy.window_size = replayWindowSize
        // A NACK resend re-protects the same sequence number with the same payload, so the
        // sender must not treat it as a replay (safe only because the bytes are identical).
        policy.allow_repeat_tx = direction == ssrc_any_outbound ? 1 : 0
        policy.next = nil

        var material = keyAndSalt
        var context: OpaquePointer?
        let status = material.withUnsafeMutableBufferPointer { key in
            // libsrtp derives the session keys inside srtp_create and keeps no pointer to `key`.
            policy.key = key.baseAddress
            return srtp_create(&context, &policy)
        }
        for index in material.indices { material[index] = 0 }
        guard status == srtp_err_status_ok, let context else {
            throw .library(code: Int32(truncatingIfNeeded: status.rawValue))
        }
        return context
    }
}
