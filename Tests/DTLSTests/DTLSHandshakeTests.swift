import DTLS
import RTCBase
import Testing

@Suite("DTLS handshake")
struct DTLSHandshakeTests {
    @Test("client and server connect with the same SRTP keying material")
    func connects() throws {
        let pair = try LinkedPair()
        pair.run()
        let clientKeys = try #require(pair.clientConnected)
        let serverKeys = try #require(pair.serverConnected)
        #expect(clientKeys == serverKeys)
        #expect(pair.client.isConnected && pair.server.isConnected)
        #expect(pair.client.nextDeadline == nil && pair.server.nextDeadline == nil)
        // RFC 5764 §4.2 lengths for the profile mbedTLS 2.28 negotiates.
        #expect(clientKeys.profile == .aes128CmHmacSha1_80)
        #expect(clientKeys.clientKey.count == 16 && clientKeys.serverKey.count == 16)
        #expect(clientKeys.clientSalt.count == 14 && clientKeys.serverSalt.count == 14)
        #expect(clientKeys.clientKey != clientKeys.serverKey)
        #expect(clientKeys.clientKey != [UInt8](repeating: 0, count: 16))
        // The server answered the first ClientHello statelessly (RFC 6347 §4.2.1).
        #expect(Record.firstHandshakeType(pair.fromServer[0]) == Record.helloVerifyRequest)
        #expect(pair.fromClient.count >= 3)
        // No retransmission was needed on a lossless link.
        #expect(pair.clock == pair.start)
    }

    @Test("no datagram exceeds 1200 bytes")
    func datagramSize() throws {
        let pair = try LinkedPair()
        pair.run()
        #expect(pair.clientConnected != nil)
        #expect(pair.allDatagrams.allSatisfy { $0.count <= DTLSEndpoint.maximumDatagramSize })
        // Large application data is split into records that fit as well.
        try pair.client.sendApplicationData([UInt8](repeating: 7, count: 5000))
        var sent: [[UInt8]] = []
        while let datagram = pair.client.pollTransmit() { sent.append(datagram) }
        #expect(sent.count >= 5)
        #expect(sent.allSatisfy { $0.count <= DTLSEndpoint.maximumDatagramSize })
    }

    @Test("different seeds give different keys; same handshake keys on both sides each time")
    func keysDiffer() throws {
        let first = try LinkedPair(seed: 1)
        first.run()
        let second = try LinkedPair(seed: 2)
        second.run()
        let a = try #require(first.clientConnected)
        let b = try #require(second.clientConnected)
        #expect(a != b)
        #expect(first.serverConnected == a && second.serverConnected == b)
    }

    @Test("SHA1_80 is chosen when the client offers only that")
    func sha1OnlyClient() throws {
        let pair = try LinkedPair(clientProfiles: [.aes128CmHmacSha1_80])
        pair.run()
        #expect(pair.clientConnected?.profile == .aes128CmHmacSha1_80)
        #expect(pair.serverConnected?.profile == .aes128CmHmacSha1_80)
    }

    @Test("GCM alone cannot be negotiated with mbedTLS 2.28 and is refused up front")
    func gcmOnly() throws {
        #expect(DTLSEndpoint.supportedProfiles == [.aes128CmHmacSha1_80])
        var random = SeededRandom(seed: 3)
        #expect(throws: DTLSError.unsupportedSRTPProfiles([.aeadAes128Gcm])) {
            _ = try DTLSEndpoint(role: .server, certificate: Fixtures.serverCertificate,
                                 remoteFingerprintSHA256: Fixtures.clientCertificate.fingerprintSHA256,
                                 profiles: [.aeadAes128Gcm], now: .zero, random: &random)
        }
    }

    @Test("the server rejects a client certificate with the wrong fingerprint")
    func serverSeesWrongCertificate() throws {
        var wrong = Fixtures.clientCertificate.fingerprintSHA256
        wrong[5] ^= 0x40
        let pair = try LinkedPair(serverExpects: wrong)
        pair.run()
        #expect(pair.serverFailure == .fingerprintMismatch)
        #expect(pair.serverConnected == nil)
        #expect(pair.clientConnected == nil)
        #expect(pair.clientFailure != nil)  // the server's fatal alert
        #expect(!pair.client.isConnected && !pair.server.isConnected)
    }

    @Test("the client rejects a server certificate with the wrong fingerprint")
    func clientSeesWrongCertificate() throws {
        let pair = try LinkedPair(clientExpects: Fixtures.clientCertificate.fingerprintSHA256)
        pair.run()
        #expect(pair.clientFailure == .fingerprintMismatch)
        #expect(pair.clientConnected == nil)
        #expect(pair.serverConnected == nil)
        #expect(pair.serverFailure != nil)
    }

    @Test("a fingerprint of the wrong length never matches")
    func shortFingerprint() throws {
        let pair = try LinkedPair(clientExpects: Array(Fixtures.serverCertificate.fingerprintSHA256.prefix(20)))
        pair.run()
        #expect(pair.clientFailure == .fingerprintMismatch)
    }

    @Test("a lost datagram is retransmitted at nextDeadline and the handshake completes",
          arguments: [(true, 0), (true, 1), (true, 2), (true, 3), (false, 0), (false, 1), (false, 2), (false, 3)])
    func lostDatagram(fromClient: Bool, index: Int) throws {
        let pair = try LinkedPair()
        if fromClient { pair.dropFromClient = { $0 == index } } else { pair.dropFromServer = { $0 == index } }
        pair.run()
        let keys = try #require(pair.clientConnected)
        #expect(pair.serverConnected == keys)
        #expect(pair.allDatagrams.allSatisfy { $0.count <= DTLSEndpoint.maximumDatagramSize })
    }

    @Test("the first flights of one direction are dropped several times over", arguments: [true, false])
    func lostFlights(fromClient: Bool) throws {
        let pair = try LinkedPair()
        if fromClient { pair.dropFromClient = { $0 < 3 } } else { pair.dropFromServer = { $0 < 3 } }
        pair.run()
        #expect(pair.clientConnected != nil)
        #expect(pair.clientConnected == pair.serverConnected)
        // Retransmission took at least the first timeout of virtual time.
        #expect(pair.clock - pair.start >= DTLSEndpoint.initialRetransmissionTimeout)
    }

    @Test("the retransmission timer follows the injected clock and backs off")
    func timerBackOff() throws {
        let pair = try LinkedPair()
        let start = pair.start
        pair.client.start(now: start)
        let clientHello = try #require(pair.client.pollTransmit())
        #expect(Record.firstHandshakeType(clientHello) == 1)
        #expect(pair.client.pollTransmit() == nil)
        let first = try #require(pair.client.nextDeadline)
        #expect(first == start + DTLSEndpoint.initialRetransmissionTimeout)
        // Early: nothing happens.
        pair.client.handleTimeout(now: first - .milliseconds(1))
        #expect(pair.client.pollTransmit() == nil)
        // At the deadline: the ClientHello again, and a doubled timeout.
        pair.client.handleTimeout(now: first)
        let again = try #require(pair.client.pollTransmit())
        #expect(Record.firstHandshakeType(again) == 1)
        #expect(pair.client.nextDeadline == first + DTLSEndpoint.initialRetransmissionTimeout * 2)
    }

    @Test("a client whose peer never answers times out; the server stays stateless")
    func timeoutBeforeCookie() throws {
        let pair = try LinkedPair()
        pair.dropFromServer = { _ in true }
        pair.run(limit: .seconds(120))
        #expect(pair.clientFailure == .handshakeTimeout)
        #expect(pair.client.nextDeadline == nil)
        let elapsed = pair.clock - pair.start
        #expect(elapsed >= .seconds(20) && elapsed <= .seconds(30))
        // Only HelloVerifyRequests went out: no server state, no timer, no event (RFC 6347 §4.2.1).
        #expect(pair.fromServer.allSatisfy { Record.firstHandshakeType($0) == Record.helloVerifyRequest })
        #expect(pair.serverEvents.isEmpty && pair.server.nextDeadline == nil)
    }

    @Test("both sides time out when the link dies after the cookie exchange")
    func timeoutAfterCookie() throws {
        let pair = try LinkedPair()
        pair.dropFromServer = { $0 >= 1 }
        pair.run(limit: .seconds(120))
        #expect(pair.clientFailure == .handshakeTimeout)
        #expect(pair.serverFailure == .handshakeTimeout)
        #expect(pair.client.nextDeadline == nil && pair.server.nextDeadline == nil)
        // Datagrams after failure are ignored.
        pair.server.receive(pair.fromClient[0], now: pair.clock)
        #expect(pair.server.pollTransmit() == nil && pair.server.pollEvent() == nil)
    }

    @Test("the server stays stateless until the ClientHello carries its cookie")
    func serverStatelessBeforeCookie() throws {
        let pair = try LinkedPair()
        pair.client.start(now: pair.start)
        let clientHello = try #require(pair.client.pollTransmit())
        pair.server.receive(clientHello, now: pair.start)
        let verify = try #require(pair.server.pollTransmit())
        #expect(Record.firstHandshakeType(verify) == Record.helloVerifyRequest)
        #expect(pair.server.nextDeadline == nil)
        // The same ClientHello again only earns another HelloVerifyRequest.
        pair.server.receive(clientHello, now: pair.start)
        #expect(pair.server.pollTransmit().map(Record.firstHandshakeType) == Record.helloVerifyRequest)
        #expect(pair.server.pollEvent() == nil)
    }

    @Test("application data flows both ways and close_notify closes the peer")
    func applicationData() throws {
        let pair = try LinkedPair()
        pair.run()
        #expect(pair.clientConnected != nil)
        try pair.client.sendApplicationData(Array("hello from the viewer".utf8))
        try pair.server.sendApplicationData(Array("hello from rtcam".utf8))
        pair.pump()
        #expect(pair.serverEvents.contains(.applicationData(Array("hello from the viewer".utf8))))
        #expect(pair.clientEvents.contains(.applicationData(Array("hello from rtcam".utf8))))
        pair.client.close()
        #expect(!pair.client.isConnected)
        pair.pump()
        #expect(pair.serverEvents.last == .closed)
        #expect(!pair.server.isConnected)
        #expect(throws: DTLSError.notConnected) { try pair.server.sendApplicationData([1]) }
    }

    @Test("application data before the handshake is refused")
    func dataTooEarly() throws {
        let pair = try LinkedPair()
        #expect(throws: DTLSError.notConnected) { try pair.client.sendApplicationData([1, 2, 3]) }
    }
}
