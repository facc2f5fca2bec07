import RTCBase
import Testing
@testable import SRTP

/// End-to-end vectors: libsrtp's own reference packets (test/srtp_driver.c `srtp_validate` and
/// `srtp_validate_gcm`), also used by other SRTP implementations for interop. The AES-CM master key
/// and salt are those of RFC 3711 Appendix B.3, so this exercises the §4.3 key derivation, the
/// §4.1.1 AES-CM keystream and the §4.2 HMAC-SHA1-80 tag.
@Suite("SRTP known answers")
struct SRTPKnownAnswerTests {
    static let rtpPlaintext = hex("800f1234 decafbad cafebabe" + String(repeating: "ab", count: 16))
    static let rtcpPlaintext = hex("81c8000b cafebabe" + String(repeating: "ab", count: 16))

    @Test("AES_CM_128_HMAC_SHA1_80 (RFC 3711 B.3 master key)")
    func aesCounterModeHMACSHA1() throws {
        let keys = keyingMaterial(
            .aes128CmHmacSha1_80,
            clientKey: hex("e1f97a0d3e018be0d64fa32c06de4139"),
            clientSalt: hex("0ec675ad498afeebb6960b3aabe6"))
        let srtp = hex("""
            800f1234 decafbad cafebabe 4e55dc4c e79978d8 8ca4d215 949d2402 b78d6acc 99ea179b 8dbb
            """)
        let srtcp = hex("""
            81c8000b cafebabe 7128035b e487b9bd bef89041 f977a5a8 80000001 993e08cd 54d6c123 0798
            """)
        let sender = try SRTPSession(keys: keys, isClient: true)
        #expect(try sender.protectRTP(Self.rtpPlaintext) == srtp)
        #expect(try sender.protectRTCP(Self.rtcpPlaintext) == srtcp)

        let receiver = try SRTPSession(keys: keys, isClient: false)
        #expect(try receiver.unprotectRTP(srtp) == Self.rtpPlaintext)
        #expect(try receiver.unprotectRTCP(srtcp) == Self.rtcpPlaintext)
    }

    @Test("AEAD_AES_128_GCM (RFC 7714, 12-byte salt)")
    func aesGCM() throws {
        let keys = keyingMaterial(
            .aeadAes128Gcm,
            clientKey: hex("000102030405060708090a0b0c0d0e0f"),
            clientSalt: hex("a0a1a2a3a4a5a6a7a8a9aaab"))
        let srtp = hex("""
            800f1234 decafbad cafebabe c5002ede 04cfdd2e b91159e0 880aa06e d2976826 f796b201 df3131a1 27e8a392
            """)
        let srtcp = hex("""
            81c8000b cafebabe c98b8b5d f0392a55 852b6c21 ac8e7025 c52c6fbe a2b3b446 ea31123b a88ce61e 80000001
            """)
        let sender = try SRTPSession(keys: keys, isClient: true)
        #expect(try sender.protectRTP(Self.rtpPlaintext) == srtp)
        #expect(try sender.protectRTCP(Self.rtcpPlaintext) == srtcp)

        let receiver = try SRTPSession(keys: keys, isClient: false)
        #expect(try receiver.unprotectRTP(srtp) == Self.rtpPlaintext)
        #expect(try receiver.unprotectRTCP(srtcp) == Self.rtcpPlaintext)
    }
}
