import DTLS
import Testing

/// The block cipher and MAC the SRTP layer gets from mbedTLS, against their standards' vectors.
@Suite struct MbedPrimitivesTests {
    static func hex(_ text: String) -> [UInt8] {
        let digits = Array(text.utf8)
        return stride(from: 0, to: digits.count, by: 2).map { index in
            func value(_ c: UInt8) -> UInt8 { c >= 97 ? c - 87 : c >= 65 ? c - 55 : c - 48 }
            return value(digits[index]) << 4 | value(digits[index + 1])
        }
    }

    @Test func aes128EncryptsBlocksInPlace() throws {
        // FIPS-197 Appendix C.1, then RFC 3711 B.2's first keystream block (another key) as a second block.
        let encryptor = try #require(Self.hex("000102030405060708090a0b0c0d0e0f").withUnsafeBytes {
            MbedAES128(key: $0)
        })
        var blocks = Self.hex("00112233445566778899aabbccddeeff") + Self.hex("00112233445566778899aabbccddeeff")
        blocks.withUnsafeMutableBytes { encryptor.encryptBlocks($0.baseAddress!, count: 2) }
        #expect(blocks == Self.hex("69c4e0d86a7b0430d8cdb78070b4c55a") + Self.hex("69c4e0d86a7b0430d8cdb78070b4c55a"))

        let srtpKey = try #require(Self.hex("2B7E151628AED2A6ABF7158809CF4F3C").withUnsafeBytes {
            MbedAES128(key: $0)
        })
        var counter = Self.hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000")
        counter.withUnsafeMutableBytes { srtpKey.encryptBlocks($0.baseAddress!, count: 1) }
        #expect(counter == Self.hex("E03EAD0935C95E80E166B16DD92B4EB4"))
    }

    @Test func aes128RefusesOtherKeyLengths() {
        #expect([UInt8](repeating: 1, count: 24).withUnsafeBytes { MbedAES128(key: $0) } == nil)
        #expect([UInt8]().withUnsafeBytes { MbedAES128(key: $0) } == nil)
    }

    @Test func hmacSHA1MatchesRFC2202AndRestarts() throws {
        let mac = try #require([UInt8](repeating: 0x0B, count: 20).withUnsafeBytes { MbedHMACSHA1(key: $0) })
        var digest = [UInt8](repeating: 0, count: 20)
        for _ in 0..<2 {  // start() begins a fresh message from the precomputed pads
            mac.start()
            Array("Hi ".utf8).withUnsafeBytes { mac.update($0) }
            Array("There".utf8).withUnsafeBytes { mac.update($0) }
            digest.withUnsafeMutableBytes { mac.finish(into: $0.baseAddress!) }
            #expect(digest == Self.hex("b617318655057264e28bc0b6fb378c8ef146be00"))
        }
        // RFC 2202 §3 test case 2: key "Jefe".
        let jefe = try #require(Array("Jefe".utf8).withUnsafeBytes { MbedHMACSHA1(key: $0) })
        jefe.start()
        Array("what do ya want for nothing?".utf8).withUnsafeBytes { jefe.update($0) }
        digest.withUnsafeMutableBytes { jefe.finish(into: $0.baseAddress!) }
        #expect(digest == Self.hex("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"))
    }
}
