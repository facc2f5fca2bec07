import DTLS
import RTCBase
import Testing

@Suite("DTLS certificates and mbedTLS digests")
struct DTLSCertificateTests {
    @Test("PEM round trip keeps the certificate and fingerprint")
    func pemRoundTrip() throws {
        let original = Fixtures.serverCertificate
        #expect(original.pem.hasPrefix("-----BEGIN EC PRIVATE KEY-----"))
        #expect(original.pem.contains("-----BEGIN CERTIFICATE-----"))
        let restored = try DTLSCertificate(pem: original.pem)
        #expect(restored == original)
        #expect(restored.fingerprintSHA256 == original.fingerprintSHA256)
        #expect(restored.fingerprintSDP == original.fingerprintSDP)
        #expect(original.fingerprintSHA256 == MbedDigest.sha256(original.certificateDER))
        // A restored certificate works in a handshake as the expected peer.
        let pair = try LinkedPair(clientExpects: restored.fingerprintSHA256)
        pair.run()
        #expect(pair.clientConnected != nil)
    }

    @Test("generation is deterministic for a seed and distinct across seeds")
    func deterministic() throws {
        var a = SeededRandom(seed: 99), b = SeededRandom(seed: 99), c = SeededRandom(seed: 100)
        let first = try DTLSCertificate.generate(random: &a)
        let second = try DTLSCertificate.generate(random: &b)
        let third = try DTLSCertificate.generate(random: &c)
        #expect(first == second)
        #expect(first.fingerprintSHA256 != third.fingerprintSHA256)
    }

    @Test("fingerprintSDP is upper-case hex pairs joined by colons (RFC 8122 §5)")
    func sdpFormat() {
        let text = Fixtures.clientCertificate.fingerprintSDP
        #expect(text.count == 32 * 3 - 1)
        let pairs = text.split(separator: ":")
        #expect(pairs.count == 32)
        #expect(pairs.allSatisfy { $0.count == 2 && $0.allSatisfy { "0123456789ABCDEF".contains($0) } })
        #expect(DTLSCertificate.sdpFingerprint([0x00, 0xAB, 0x0F]) == "00:AB:0F")
    }

    @Test("DER looks like an X.509 certificate with an ECDSA P-256 key")
    func derShape() {
        let der = Fixtures.clientCertificate.certificateDER
        #expect(der.first == 0x30)  // SEQUENCE
        #expect(der.count > 200 && der.count < 1000)
        // OID 1.2.840.10045.3.1.7 (prime256v1) and ecdsa-with-SHA256 1.2.840.10045.4.3.2.
        let prime256v1: [UInt8] = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07]
        let ecdsaSHA256: [UInt8] = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02]
        #expect(contains(der, prime256v1))
        #expect(contains(der, ecdsaSHA256))
        #expect(contains(der, Array("viewer".utf8)))
    }

    @Test("a common name with special characters is sanitized")
    func commonName() throws {
        var random = SeededRandom(seed: 5)
        let certificate = try DTLSCertificate.generate(commonName: "cam,O=evil\\", random: &random)
        #expect(contains(certificate.certificateDER, Array("camOevil".utf8)))
    }

    @Test("bad PEM input is rejected with invalidCertificate", arguments: [
        "", "garbage", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    ])
    func badPEM(text: String) {
        #expect { try DTLSCertificate(pem: text) } throws: { error in
            if case DTLSError.invalidCertificate = error { return true }
            return false
        }
    }

    @Test("a key that does not belong to the certificate is rejected")
    func mismatchedKey() throws {
        let key = try #require(Fixtures.clientCertificate.pem.split(separator: "-----BEGIN CERTIFICATE-----").first)
        let certificate = try #require(Fixtures.serverCertificate.pem.firstRange(of: "-----BEGIN CERTIFICATE-----"))
        let mixed = String(key) + Fixtures.serverCertificate.pem[certificate.lowerBound...]
        #expect { try DTLSCertificate(pem: mixed) } throws: { error in
            if case DTLSError.invalidCertificate = error { return true }
            return false
        }
        // Truncated PEMs never crash.
        let pem = Array(Fixtures.serverCertificate.pem.utf8)
        for length in stride(from: 0, to: pem.count, by: 7) {
            _ = try? DTLSCertificate(pem: String(decoding: pem.prefix(length), as: UTF8.self))
        }
    }

    @Test("SHA-256 known answers (FIPS 180-4 examples)")
    func sha256() {
        #expect(MbedDigest.sha256(Array("abc".utf8))
                == hex("ba7816bf 8f01cfea 414140de 5dae2223 b00361a3 96177a9c b410ff61 f20015ad"))
        #expect(MbedDigest.sha256([])
                == hex("e3b0c442 98fc1c14 9afbf4c8 996fb924 27ae41e4 649b934c a495991b 7852b855"))
        #expect(MbedDigest.sha256(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == hex("248d6a61 d20638b8 e5c02693 0c3e6039 a33ce459 64ff2167 f6ecedd4 19db06c1"))
    }

    @Test("PBKDF2-HMAC-SHA256 known answers (RFC 7914 §11 and the common password/salt vectors)")
    func pbkdf2() {
        #expect(MbedDigest.pbkdf2HMACSHA256(password: Array("passwd".utf8), salt: Array("salt".utf8),
                                            iterations: 1, length: 64)
                == hex("""
                    55 ac 04 6e 56 e3 08 9f ec 16 91 c2 25 44 b6 05 f9 41 85 21 6d de 04 65 e6 8b 9d 57 c2 0d ac bc
                    49 ca 9c cc f1 79 b6 45 99 16 64 b3 9d 77 ef 31 7c 71 b8 45 b1 e3 0b d5 09 11 20 41 d3 a1 97 83
                    """))
        let password = Array("password".utf8), salt = Array("salt".utf8)
        #expect(MbedDigest.pbkdf2HMACSHA256(password: password, salt: salt, iterations: 1, length: 32)
                == hex("120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b"))
        #expect(MbedDigest.pbkdf2HMACSHA256(password: password, salt: salt, iterations: 2, length: 32)
                == hex("ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43"))
        #expect(MbedDigest.pbkdf2HMACSHA256(password: password, salt: salt, iterations: 4096, length: 32)
                == hex("c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a"))
        #expect(MbedDigest.pbkdf2HMACSHA256(password: password, salt: salt, iterations: 1, length: 0) == [])
    }
}

func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty, haystack.count >= needle.count else { return needle.isEmpty }
    for start in 0...(haystack.count - needle.count) where Array(haystack[start..<start + needle.count]) == needle {
        return true
    }
    return false
}
