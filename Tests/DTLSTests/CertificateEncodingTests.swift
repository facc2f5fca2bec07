import RTCBase
import Testing
@testable import DTLS

/// RFC 5758 §3.2: ecdsa-with-SHA256 AlgorithmIdentifiers carry no parameters. mbedTLS 2.28 writes an
/// explicit NULL; aiortc (Python `cryptography`) then refuses rtcam's certificate.
@Suite struct CertificateEncodingTests {
    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func generatedCertificatesHaveNoNullSignatureParametersAndAValidSignature(seed: UInt64) throws {
        var random = SeededRandom(seed: seed)
        let certificate = try DTLSCertificate.generate(commonName: "rtcam", random: &random)
        let der = certificate.certificateDER
        #expect(!contains(der, X509Encoding.ecdsaWithSHA256WithNull))
        #expect(occurrences(of: X509Encoding.ecdsaWithSHA256, in: der) == 2)  // TBS signature + outer
        #expect(certificateSelfSignatureIsValid(der))
        // Still loads, and keeps its fingerprint, through the PEM round trip.
        #expect(try DTLSCertificate(pem: certificate.pem).fingerprintSHA256 == certificate.fingerprintSHA256)
    }

    @Test func derLengthsUseTheShortestForm() {
        #expect(X509Encoding.length(0) == [0x00])
        #expect(X509Encoding.length(127) == [0x7F])
        #expect(X509Encoding.length(128) == [0x81, 0x80])
        #expect(X509Encoding.length(300) == [0x82, 0x01, 0x2C])
    }

    @Test func refusesInputThatIsNotACertificate() {
        #expect(X509Encoding.certificateWithoutNullParameters([0x30, 0x03, 0x02, 0x01, 0x00], sign: { _ in [1] }) == nil)
        #expect(X509Encoding.certificateWithoutNullParameters([], sign: { _ in [1] }) == nil)
        #expect(X509Encoding.certificateWithoutNullParameters([0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF], sign: { _ in [1] }) == nil)
    }

    private func occurrences(of needle: [UInt8], in haystack: [UInt8]) -> Int {
        guard haystack.count >= needle.count else { return 0 }
        return (0...(haystack.count - needle.count)).filter { Array(haystack[$0..<$0 + needle.count]) == needle }.count
    }

    private func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool { occurrences(of: needle, in: haystack) > 0 }
}
