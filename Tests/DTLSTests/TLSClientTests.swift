import RTCBase
import Testing
@testable import DTLS

/// The TLS client rtcam dials `turns:` servers with (issue 19): the certificate is verified against
/// the trusted CAs and the name dialled; the engine is sans-IO, so a client and a server are joined
/// here in memory. The certificates: a test CA (P-256, valid to 2126) and a server certificate it
/// signed for turn.test, 127.0.0.1 (DNS and IP), plus a second CA that signed nothing here.
@Suite struct TLSClientTests {
    static let testCA = """
-----BEGIN CERTIFICATE-----
MIIBlzCCAT2gAwIBAgIUPhUCyTIsVFx7gF025BVtMaMhxdEwCgYIKoZIzj0EAwIw
GDEWMBQGA1UEAwwNcnRjYW0gdGVzdCBDQTAgFw0yNjEyMDYwMTU1MDRaGA8yMTI2
MTExMjAxNTUwNFowGDEWMBQGA1UEAwwNcnRjYW0gdGVzdCBDQTBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABEu9FP9LS5LYyjRZUPjufNx6IsHa5mY3K1NhenO5RzD+
fIM2bk5ryd6rl3Tc0aPQwBjgGWStGitBeOc17WQcHxmjYzBhMB0GA1UdDgQWBBS7
fm9qOjICnFORtiTXXw1Zz/V7ZTAfBgNVHSMEGDAWgBS7fm9qOjICnFORtiTXXw1Z
z/V7ZTAPBgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwIBBjAKBggqhkjOPQQD
AgNIADBFAiEAqdANzbC0X5b9AtGmzfsi969U8PmVtX2HwZkpkb479TkCIBOUlju2
OPXLz75csZk9mGFZUHZpjWxhBvd85VJ/F1hw
-----END CERTIFICATE-----
"""
    static let otherCA = """
-----BEGIN CERTIFICATE-----
MIIBiTCCAS+gAwIBAgIUHFptfaLzqWdnERg4mogGZTkfq+UwCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOcnRjYW0gb3RoZXIgQ0EwIBcNMjYxMjA2MDE1NTA0WhgPMjEy
NjExMTIwMTU1MDRaMBkxFzAVBgNVBAMMDnJ0Y2FtIG90aGVyIENBMFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAEIrO58pTzVyIBXbHHCeq/ch7a+M+Vh1wXJ08QmSXn
tBs4re8XUJw7LoJg+Fj33dXIx42ry+X0l0qsNASKSlQ1lqNTMFEwHQYDVR0OBBYE
FLomb3s8Is5I5EcfjsIJiCLiDeLhMB8GA1UdIwQYMBaAFLomb3s8Is5I5EcfjsIJ
iCLiDeLhMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIgOsvdsjOA
kmraS2X7EAudmEE0+LpSdhfKxsn/8jJ1AAUCIQCQcBiRkIn5KUNPSw7nz2xteqpC
5Jov73HYKLEZSKZsMA==
-----END CERTIFICATE-----
"""
    static let serverKeyAndChain = """
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgbSlHESNiT1i8pBs9
cuL2uzQB4ug/xKJf486y+NCQHAuhRANCAAQZ4e7DR1jjs9zZ2NV7UzGzfhjCQ09A
b9h5ywclp6eBD9G0Efu/DrZk1rOA9B7C2zHd83qh5Rwf8FDbOO388Agm
-----END PRIVATE KEY-----
-----BEGIN CERTIFICATE-----
MIIBuzCCAWGgAwIBAgIUQ5kIJAmkcH5P0RAs4HvShIbrL/4wCgYIKoZIzj0EAwIw
GDEWMBQGA1UEAwwNcnRjYW0gdGVzdCBDQTAgFw0yNjEyMDYwMTU1MDVaGA8yMTI2
MTExMjAxNTUwNVowFDESMBAGA1UEAwwJdHVybi50ZXN0MFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAEGeHuw0dY47Pc2djVe1Mxs34YwkNPQG/YecsHJaengQ/RtBH7
vw62ZNazgPQewtsx3fN6oeUcH/BQ2zjt/PAIJqOBijCBhzAlBgNVHREEHjAcggl0
dXJuLnRlc3SCCTEyNy4wLjAuMYcEfwAAATAJBgNVHRMEAjAAMBMGA1UdJQQMMAoG
CCsGAQUFBwMBMB0GA1UdDgQWBBShIg14xCY0javizyLtippPf+id6jAfBgNVHSME
GDAWgBS7fm9qOjICnFORtiTXXw1Zz/V7ZTAKBggqhkjOPQQDAgNIADBFAiA2Rx5c
52MrcVFklCSOCevWrc0Y6BbWmymWrFTXsJPSNAIhAPVwdl39vnmDSoMxb6v7doNN
HOsBqhPth0oQXlq0/SAS
-----END CERTIFICATE-----
"""

    /// Moves bytes between the two until neither has any; returns the client's events.
    static func run(_ client: TLSConnection, _ server: TLSConnection) -> [TLSConnectionEvent] {
        var events: [TLSConnectionEvent] = []
        for _ in 0 ..< 20 {
            let toServer = client.takeTransmit()
            if !toServer.isEmpty { server.receive(toServer) }
            let toClient = server.takeTransmit()
            if !toClient.isEmpty { client.receive(toClient) }
            events += client.takeEvents()
            if toServer.isEmpty, toClient.isEmpty { break }
        }
        return events
    }

    static func pair(trusting ca: String, name: String, seed: UInt64 = 7) throws -> (client: TLSConnection, server: TLSConnection) {
        var random = SeededRandom(seed: seed)
        let clientContext = try TLSClientContext(trustedPEM: Array(ca.utf8), random: &random)
        let serverContext = try TLSServerContext(pem: serverKeyAndChain, random: &random)
        return (try TLSConnection(.client(clientContext, serverName: name)), try TLSConnection(.server(serverContext)))
    }

    @Test func trustedServerCarriesDataBothWays() throws {
        for name in ["turn.test", "127.0.0.1"] {
            let (client, server) = try Self.pair(trusting: Self.testCA, name: name)
            client.send(Array("before the handshake".utf8))   // queued until it is done
            let events = Self.run(client, server)
            #expect(client.isEstablished, "\(name): \(events)")
            guard case .established(let version, _)? = events.first else {
                Issue.record("\(name): \(events)")
                continue
            }
            #expect(version.hasPrefix("TLSv1."))
            #expect(server.takePlaintext() == Array("before the handshake".utf8))
            server.send(Array(repeating: 0x42, count: 40_000))   // more than one record
            _ = Self.run(client, server)
            #expect(client.takePlaintext() == Array(repeating: 0x42, count: 40_000))
        }
    }

    @Test func certificateOfAnotherCAIsRefused() throws {
        let (client, server) = try Self.pair(trusting: Self.otherCA, name: "turn.test")
        let events = Self.run(client, server)
        #expect(!client.isEstablished)
        #expect(client.isFinished)
        guard case .failed(.untrustedCertificate(let reasons))? = events.last else {
            Issue.record("\(events)")
            return
        }
        #expect(reasons.contains("not correctly signed by the trusted CA"), "\(reasons)")
        #expect(server.takePlaintext().isEmpty)
    }

    @Test func certificateForAnotherNameIsRefused() throws {
        let (client, server) = try Self.pair(trusting: Self.testCA, name: "turn.example.org")
        let events = Self.run(client, server)
        #expect(!client.isEstablished)
        guard case .failed(.untrustedCertificate(let reasons))? = events.last else {
            Issue.record("\(events)")
            return
        }
        #expect(reasons.contains("CN"), "\(reasons)")
        #expect(TLSFailure.untrustedCertificate(reasons).description.hasPrefix("the server's certificate is not trusted"))
    }

    @Test func bundleWithoutCertificatesIsRefused() {
        var random = SeededRandom(seed: 1)
        #expect(throws: DTLSError.self) { try TLSClientContext(trustedPEM: Array("not a certificate".utf8), random: &random) }
    }
}
