import RTCBase
@testable import SRTP

/// Fixed "exporter output" for a profile: bytes counting up from `start` (RFC 5764 §4.2 layout:
/// client key, server key, client salt, server salt).
func keyingMaterial(_ profile: SRTPProfile, start: UInt8 = 1) -> SRTPKeyingMaterial {
    let exported = (0..<profile.keyingMaterialLength).map { start &+ UInt8(truncatingIfNeeded: $0 &* 7) }
    return SRTPKeyingMaterial(profile: profile, exported: exported)
}

/// Exporter output assembled from explicit client key/salt (server key/salt filled with a pattern).
func keyingMaterial(_ profile: SRTPProfile, clientKey: [UInt8], clientSalt: [UInt8]) -> SRTPKeyingMaterial {
    let serverKey = [UInt8](repeating: 0x5A, count: profile.masterKeyLength)
    let serverSalt = [UInt8](repeating: 0xA5, count: profile.masterSaltLength)
    return SRTPKeyingMaterial(profile: profile, exported: clientKey + serverKey + clientSalt + serverSalt)
}

/// A client (DTLS client, i.e. the viewer) and a server (rtcam) with the same keys.
func sessionPair(_ profile: SRTPProfile) throws -> (client: SRTPSession, server: SRTPSession) {
    let keys = keyingMaterial(profile)
    return (try SRTPSession(keys: keys, isClient: true), try SRTPSession(keys: keys, isClient: false))
}

/// A plain RTP packet (RFC 3550 §5.1), version 2, no CSRCs or extensions unless given.
func rtpPacket(
    sequenceNumber: UInt16, ssrc: UInt32 = 0x1234_5678, payloadType: UInt8 = 96,
    timestamp: UInt32 = 90_000, payload: [UInt8], extensionWords: [UInt32]? = nil
) -> [UInt8] {
    var writer = ByteWriter()
    writer.write(UInt8(extensionWords == nil ? 0x80 : 0x90))
    writer.write(payloadType & 0x7F)
    writer.write(sequenceNumber)
    writer.write(timestamp)
    writer.write(ssrc)
    if let extensionWords {
        writer.write(UInt16(0xBEDE))
        writer.write(UInt16(extensionWords.count))
        for word in extensionWords { writer.write(word) }
    }
    writer.write(contentsOf: payload)
    return writer.bytes
}

/// A receiver report with one report block (RFC 3550 §6.4.2) — any well-formed RTCP does.
func rtcpReceiverReport(senderSSRC: UInt32 = 0xCAFE_BABE, fill: UInt8 = 0x11) -> [UInt8] {
    var writer = ByteWriter()
    writer.write(UInt8(0x81))      // V=2, RC=1
    writer.write(UInt8(201))       // RR
    writer.write(UInt16(7))        // length in words - 1
    writer.write(senderSSRC)
    writer.write(contentsOf: [UInt8](repeating: fill, count: 24))
    return writer.bytes
}

func hex(_ text: String) -> [UInt8] {
    let digits = Array(text.filter { !$0.isWhitespace })
    var out: [UInt8] = []
    var index = 0
    while index + 1 < digits.count {
        out.append(UInt8(String(digits[index...index + 1]), radix: 16)!)
        index += 2
    }
    return out
}

/// The error a call throws, or nil when it succeeds.
func thrownError(_ body: () throws(SRTPError) -> [UInt8]) -> SRTPError? {
    do {
        _ = try body()
        return nil
    } catch {
        return error
    }
}

/// Where the E flag + SRTCP index word sits in a protected RTCP packet: before the tag for
/// AES-CM (RFC 3711 §3.4), at the very end for AEAD (RFC 7714 §9).
func srtcpIndexOffset(_ profile: SRTPProfile, plaintextLength: Int) -> Int {
    switch profile {
    case .aes128CmHmacSha1_80: return plaintextLength
    case .aeadAes128Gcm: return plaintextLength + SRTPSession.protectionOverhead(profile)
    }
}
