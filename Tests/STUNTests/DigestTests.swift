import Testing
@testable import STUN

private func hex(_ bytes: [UInt8]) -> String {
    bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
}

@Suite struct DigestTests {
    /// FIPS 180-2 Appendix A / FIPS 180 examples.
    @Test func sha1KnownAnswers() {
        #expect(hex(SHA1.hash(Array("abc".utf8))) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(hex(SHA1.hash([])) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(hex(SHA1.hash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)))
                == "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        #expect(hex(SHA1.hash(Array(repeating: UInt8(ascii: "a"), count: 1_000_000)))
                == "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
    }

    /// Feeding in odd-sized pieces gives the one-shot digest (block boundaries, 55/56/64-byte padding cases).
    @Test func sha1StreamingMatchesOneShot() {
        for length in [0, 1, 55, 56, 57, 63, 64, 65, 127, 128, 300] {
            let message = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            var sha = SHA1()
            var index = 0, piece = 1
            while index < length {
                let end = min(length, index + piece)
                sha.update(message[index..<end])
                index = end; piece += 3
            }
            #expect(sha.finalize() == SHA1.hash(message), "length \(length)")
        }
    }

    /// RFC 2202 §3 HMAC-SHA1 test cases 1-7.
    @Test func hmacSHA1RFC2202() {
        let cases: [(key: [UInt8], data: [UInt8], mac: String)] = [
            (Array(repeating: 0x0b, count: 20), Array("Hi There".utf8), "b617318655057264e28bc0b6fb378c8ef146be00"),
            (Array("Jefe".utf8), Array("what do ya want for nothing?".utf8), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
            (Array(repeating: 0xaa, count: 20), Array(repeating: 0xdd, count: 50), "125d7342b9ac11cd91a39af48aa17b4f63f175d3"),
            (Array(1...25), Array(repeating: 0xcd, count: 50), "4c9007f4026250c6bc8414f9bf50c86c2d7235da"),
            (Array(repeating: 0x0c, count: 20), Array("Test With Truncation".utf8), "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04"),
            (Array(repeating: 0xaa, count: 80), Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
             "aa4ae5e15272d00e95705637ce8a3b55ed402112"),
            (Array(repeating: 0xaa, count: 80),
             Array("Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data".utf8),
             "e8e99d0f45237d786d6bbaa7965c7808bbff1a91"),
        ]
        for (key, data, mac) in cases {
            #expect(hex(HMACSHA1.authenticationCode(key: key, message: data)) == mac)
        }
    }

    @Test func crc32CheckValue() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(CRC32.checksum([UInt8]()) == 0)
        #expect(CRC32.checksum(Array("The quick brown fox jumps over the lazy dog".utf8)) == 0x414F_A339)
    }
}
