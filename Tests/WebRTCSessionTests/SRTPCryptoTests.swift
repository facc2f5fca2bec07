import DTLS
import Glibc
import RTCBase
@testable import SRTP
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

    @Test("libsrtp's reference packets, with AES and HMAC-SHA1 from mbedTLS and (where the CPU has them) from the CPU's AES and SHA-1 instructions",
          arguments: [false, true])
    func mbedTLSCryptoReproducesLibsrtpReferencePackets(cpuInstructions: Bool) throws {
        #expect(SRTPCrypto.installOwnCrypto(cpuInstructions: cpuInstructions))
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

/// A backend that gets AES or HMAC-SHA1 wrong is refused before any session can use it, and the
/// one in use stays (the check runs on the candidate alone: no window in which it is installed).
@Suite struct SRTPCryptoBackendCheckTests {
    final class FlippingAES: SRTPBlockEncryptor {
        let real: MbedAES128
        init?(key: UnsafeRawBufferPointer) { guard let real = MbedAES128(key: key) else { return nil }; self.real = real }
        func encryptBlocks(_ blocks: UnsafeMutableRawPointer, count: Int) {
            real.encryptBlocks(blocks, count: count)
            blocks.storeBytes(of: blocks.load(as: UInt8.self) ^ 1, as: UInt8.self)
        }
    }

    final class TruncatingHMAC: SRTPMessageAuthenticator {
        let real: MbedHMACSHA1
        init?(key: UnsafeRawBufferPointer) { guard let real = MbedHMACSHA1(key: key) else { return nil }; self.real = real }
        func start() { real.start() }
        func update(_ bytes: UnsafeRawBufferPointer) { real.update(UnsafeRawBufferPointer(rebasing: bytes.dropLast())) }
        func finish(into digest: UnsafeMutableRawPointer) { real.finish(into: digest) }
    }

    static let good = SRTPCryptoBackend(makeAES128: { MbedAES128(key: $0) }, makeHMACSHA1: { MbedHMACSHA1(key: $0) })

    @Test func wrongPrimitivesAreRefusedAndTheInstalledOnesStay() throws {
        #expect(SRTPSession.passesKnownAnswers(Self.good))
        let badAES = SRTPCryptoBackend(makeAES128: { FlippingAES(key: $0) }, makeHMACSHA1: { MbedHMACSHA1(key: $0) })
        let badMAC = SRTPCryptoBackend(makeAES128: { MbedAES128(key: $0) }, makeHMACSHA1: { TruncatingHMAC(key: $0) })
        let noAES = SRTPCryptoBackend(makeAES128: { _ in nil }, makeHMACSHA1: { MbedHMACSHA1(key: $0) })
        for backend in [badAES, badMAC, noAES] {
            #expect(!SRTPSession.passesKnownAnswers(backend))
            #expect(!SRTPSession.installCryptoBackend(backend))
        }
        // What is installed still gives libsrtp's reference packet (srtp_driver.c srtp_validate).
        let sender = try SRTPSession(keys: SRTPCryptoTests.keys, isClient: true)
        let rtp = SRTPCryptoTests.hex("800f1234 decafbad cafebabe" + String(repeating: "ab", count: 16))
        #expect(try sender.protectRTP(rtp) == SRTPCryptoTests.hex(
            "800f1234 decafbad cafebabe 4e55dc4c e79978d8 8ca4d215 949d2402 b78d6acc 99ea179b 8dbb"))
    }
}

/// HMAC-SHA1 on the SHA instructions against RFC 2202 and against mbedTLS's, byte for byte.
@Suite(.enabled(if: AcceleratedHMACSHA1.isAvailable, "this CPU has no SHA-1 instructions"))
struct AcceleratedHMACSHA1Tests {
    static func mac(_ make: (UnsafeRawBufferPointer) -> (any SRTPMessageAuthenticator)?, key: [UInt8],
                    parts: [[UInt8]]) -> [UInt8] {
        guard let authenticator = key.withUnsafeBytes(make) else { return [] }
        authenticator.start()
        for part in parts { part.withUnsafeBytes { authenticator.update($0) } }
        var digest = [UInt8](repeating: 0, count: 20)
        digest.withUnsafeMutableBytes { authenticator.finish(into: $0.baseAddress!) }
        return digest
    }

    static func accelerated(key: [UInt8], _ parts: [UInt8]...) -> [UInt8] {
        mac({ AcceleratedHMACSHA1(key: $0) }, key: key, parts: parts)
    }

    @Test("RFC 2202 §3, the seven HMAC-SHA1 test cases (keys of 20, 4, 20, 25 and 80 bytes; data up to 73)")
    func rfc2202() {
        let hex = SRTPCryptoTests.hex
        let cases: [([UInt8], [UInt8], String)] = [
            ([UInt8](repeating: 0x0B, count: 20), Array("Hi There".utf8), "b617318655057264e28bc0b6fb378c8ef146be00"),
            (Array("Jefe".utf8), Array("what do ya want for nothing?".utf8), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
            ([UInt8](repeating: 0xAA, count: 20), [UInt8](repeating: 0xDD, count: 50), "125d7342b9ac11cd91a39af48aa17b4f63f175d3"),
            (hex("0102030405060708090a0b0c0d0e0f10111213141516171819"), [UInt8](repeating: 0xCD, count: 50),
             "4c9007f4026250c6bc8414f9bf50c86c2d7235da"),
            ([UInt8](repeating: 0x0C, count: 20), Array("Test With Truncation".utf8), "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04"),
            ([UInt8](repeating: 0xAA, count: 80), Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
             "aa4ae5e15272d00e95705637ce8a3b55ed402112"),
            ([UInt8](repeating: 0xAA, count: 80),
             Array("Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data".utf8),
             "e8e99d0f45237d786d6bbaa7965c7808bbff1a91"),
        ]
        for (index, (key, data, expected)) in cases.enumerated() {
            #expect(Self.accelerated(key: key, data) == hex(expected), "test case \(index + 1)")
        }
    }

    @Test("equal to mbedTLS's for every length 0-300 and SRTP's packet sizes, however the message is split")
    func matchesMbedTLS() {
        var random = SeededRandom(seed: 0x5A1)
        var mismatches: [String] = []
        for length in Array(0 ... 300) + [1172, 1184, 1200, 4096] {
            let key = random.bytes(length % 3 == 0 ? 20 : 1 + length % 90)
            let message = random.bytes(length)
            let cut1 = length == 0 ? 0 : Int(random.next() % UInt64(length + 1))
            let cut2 = cut1 + (length == cut1 ? 0 : Int(random.next() % UInt64(length - cut1 + 1)))
            let reference = Self.mac({ MbedHMACSHA1(key: $0) }, key: key, parts: [message])
            let whole = Self.accelerated(key: key, message)
            let split = Self.accelerated(key: key, Array(message[..<cut1]), Array(message[cut1 ..< cut2]), Array(message[cut2...]))
            if whole != reference || split != reference { mismatches.append("length \(length) cuts \(cut1),\(cut2)") }
        }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(5))")
    }

    @Test("one keyed context authenticates message after message (start resets to the key's inner state)")
    func reusedAcrossMessages() throws {
        let key = [UInt8](repeating: 0x0B, count: 20)
        let authenticator = try #require(key.withUnsafeBytes { AcceleratedHMACSHA1(key: $0) })
        var digests: [[UInt8]] = []
        for _ in 0 ..< 3 {
            authenticator.start()
            Array("Hi ".utf8).withUnsafeBytes { authenticator.update($0) }
            Array("There".utf8).withUnsafeBytes { authenticator.update($0) }
            var digest = [UInt8](repeating: 0, count: 20)
            digest.withUnsafeMutableBytes { authenticator.finish(into: $0.baseAddress!) }
            digests.append(digest)
        }
        #expect(digests.allSatisfy { $0 == SRTPCryptoTests.hex("b617318655057264e28bc0b6fb378c8ef146be00") })
    }
}

/// AES-128 on the CPU's AES instructions (AES-NI, ARMv8 AESE/AESMC), eight blocks at a time, against
/// FIPS 197 and against mbedTLS's.
@Suite(.enabled(if: AcceleratedAES128.isAvailable, "this CPU has no AES instructions"))
struct AcceleratedAES128Tests {
    static func encrypt(_ make: (UnsafeRawBufferPointer) -> (any SRTPBlockEncryptor)?, key: [UInt8], blocks: [UInt8]) -> [UInt8] {
        guard let encryptor = key.withUnsafeBytes(make) else { return [] }
        var output = blocks
        output.withUnsafeMutableBytes { encryptor.encryptBlocks($0.baseAddress!, count: blocks.count / 16) }
        return output
    }

    @Test("FIPS 197 Appendix C.1 (AES-128), alone and as block 1 of 9 (the eight-lane group and its remainder)")
    func fips197() {
        let hex = SRTPCryptoTests.hex
        let key = hex("000102030405060708090a0b0c0d0e0f")
        let plaintext = hex("00112233445566778899aabbccddeeff")
        let ciphertext = hex("69c4e0d86a7b0430d8cdb78070b4c55a")
        #expect(Self.encrypt({ AcceleratedAES128(key: $0) }, key: key, blocks: plaintext) == ciphertext)
        let nine = Self.encrypt({ AcceleratedAES128(key: $0) }, key: key, blocks: Array((0 ..< 9).map { _ in plaintext }.joined()))
        #expect(nine == Array((0 ..< 9).map { _ in ciphertext }.joined()))
        #expect(AcceleratedAES128(key: UnsafeRawBufferPointer(start: nil, count: 0)) == nil)
    }

    @Test("equal to mbedTLS's for random keys and 1-40 blocks")
    func matchesMbedTLS() {
        var random = SeededRandom(seed: 0xAE5)
        var mismatches: [Int] = []
        for count in 1 ... 40 {
            let key = random.bytes(16)
            let blocks = random.bytes(16 * count)
            let reference = Self.encrypt({ MbedAES128(key: $0) }, key: key, blocks: blocks)
            if Self.encrypt({ AcceleratedAES128(key: $0) }, key: key, blocks: blocks) != reference { mismatches.append(count) }
        }
        #expect(mismatches.isEmpty, "block counts \(mismatches)")
    }
}

/// The path the runner expects: the arm64 stage runs the SRTP crypto tests under qemu-user twice,
/// as they are (RTCAM_EXPECT_CPU_CRYPTO="ARMv8 AES+SHA1") and with RTCAM_CPU_CRYPTO=none ("none", a
/// Pi 4: the fallback to mbedTLS), so neither path can pass unnoticed by running the other.
@Suite struct CPUCryptoPathTests {
    @Test func detectedPathIsTheExpectedOne() throws {
        let path = CPUCryptoPath.name
        #expect(["none", "AES-NI", "SHA-NI", "AES-NI+SHA-NI", "ARMv8 AES", "ARMv8 SHA1", "ARMv8 AES+SHA1"].contains(path))
        #expect((path == "none") == (!AcceleratedAES128.isAvailable && !AcceleratedHMACSHA1.isAvailable))
        if let expected = getenv("RTCAM_EXPECT_CPU_CRYPTO").map({ String(cString: $0) }) {
            #expect(path == expected)
        }
        // Without the instructions the daemon's SRTP still works, on mbedTLS's primitives.
        let key = [UInt8](repeating: 7, count: 16)
        let aes = key.withUnsafeBytes { AcceleratedAES128(key: $0) }
        #expect((aes != nil) == AcceleratedAES128.isAvailable)
        #expect(key.withUnsafeBytes { MbedAES128(key: $0) } != nil)
    }
}
