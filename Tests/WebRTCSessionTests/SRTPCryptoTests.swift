import DTLS
import RTCBase
import SRTP
import Testing
import WebRTCSession

/// libsrtp with mbedTLS's AES-128 and HMAC-SHA1 (WebRTCSession.SRTPCrypto) must produce exactly
/// what libsrtp with its own crypto produces. The references: libsrtp's srtp_validate packets
/// (RFC 3711 B.3 master key), and three longer packets protected by Debian's libsrtp2 (NSS) with
/// the same keys, recorded as SHA-256 digests of the SRTP packets (multi-block keystream, a
/// partial last block, the tag over long input).
@Suite struct SRTPCryptoTests {
    static func hex(_ text: String) -> [UInt8] {
        let digits = Array(text.utf8.filter { $0 != 32 && $0 != 10 })
        return stride(from: 0, to: digits.count, by: 2).map { index in
            func value(_ c: UInt8) -> UInt8 { c >= 97 ? c - 87 : c >= 65 ? c - 55 : c - 48 }
            return value(digits[index]) << 4 | value(digits[index + 1])
        }
    }

    static let keys: SRTPKeyingMaterial = {
        let clientKey = hex("e1f97a0d3e018be0d64fa32c06de4139")
        let clientSalt = hex("0ec675ad498afeebb6960b3aabe6")
        let serverKey = [UInt8](repeating: 0x5A, count: 16)
        let serverSalt = [UInt8](repeating: 0xA5, count: 14)
        return SRTPKeyingMaterial(profile: .aes128CmHmacSha1_80, exported: clientKey + serverKey + clientSalt + serverSalt)
    }()

    @Test func mbedTLSCryptoReproducesLibsrtpReferencePackets() throws {
        #expect(SRTPCrypto.installMbedTLS())
        let sender = try SRTPSession(keys: Self.keys, isClient: true)
        let receiver = try SRTPSession(keys: Self.keys, isClient: false)

        // libsrtp test/srtp_driver.c srtp_validate.
        let rtp = Self.hex("800f1234 decafbad cafebabe" + String(repeating: "ab", count: 16))
        let rtcp = Self.hex("81c8000b cafebabe" + String(repeating: "ab", count: 16))
        let srtp = Self.hex("800f1234 decafbad cafebabe 4e55dc4c e79978d8 8ca4d215 949d2402 b78d6acc 99ea179b 8dbb")
        let srtcp = Self.hex("81c8000b cafebabe 7128035b e487b9bd bef89041 f977a5a8 80000001 993e08cd 54d6c123 0798")
        #expect(try sender.protectRTP(rtp) == srtp)
        #expect(try receiver.unprotectRTP(srtp) == rtp)
        #expect(try sender.protectRTCP(rtcp) == srtcp)
        #expect(try receiver.unprotectRTCP(srtcp) == rtcp)
        // Tampering is still caught.
        var fresh = rtp
        fresh[3] = 0x35  // a sequence number not seen yet, so the replay check passes first
        var forged = try sender.protectRTP(fresh)
        forged[14] ^= 1
        #expect(throws: SRTPError.authenticationFailed) { try receiver.unprotectRTP(forged) }

        // Longer packets: SSRC cafebabe, PT 96, sequence 0x1234 + k, payload byte i = i * 7 + k.
        let sender2 = try SRTPSession(keys: Self.keys, isClient: true)
        let receiver2 = try SRTPSession(keys: Self.keys, isClient: false)
        let references = [
            (1172, "da3f4bb0ed91d7f156a38c887caf20c080ee1a72fa83a84beb181fe95b7ced95"),
            (37, "42b846e512c16bfa4e15cb38aabc7e11ec2f94f5af82e18c9c0e7978f133a4a0"),
            (700, "ddb4340ff867ede1cb55290dfce753a89f89e693762b0151914742cc947e1992"),
        ]
        for (k, (length, digest)) in references.enumerated() {
            var packet: [UInt8] = [0x80, 0x60, 0x12, UInt8(0x34 + k), 0xDE, 0xCA, 0xFB, 0xAD, 0xCA, 0xFE, 0xBA, 0xBE]
            packet += (0..<length).map { UInt8(truncatingIfNeeded: $0 * 7 + k) }
            let protected = try sender2.protectRTP(packet)
            #expect(protected.count == packet.count + 10)
            #expect(MbedDigest.sha256(protected) == Self.hex(digest), "packet \(k) (\(length)-byte payload)")
            #expect(try receiver2.unprotectRTP(protected) == packet)
        }
    }
}
