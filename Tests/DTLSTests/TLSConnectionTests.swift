import RTCBase
import Testing
@testable import DTLS

/// The one memory-BIO TLS engine both ends use (`TLSConnection`): a client and a server made from
/// it are joined in memory, and each end's events, plaintext and state are checked, not only the
/// client's. Certificates: TLSClientTests' test CA, its server certificate for turn.test, and the
/// second CA that signed nothing here.
@Suite struct TLSConnectionTests {
    /// Both ends' events, collected while bytes move between them.
    struct Pair {
        let client: TLSConnection
        let server: TLSConnection
        var clientEvents: [TLSConnectionEvent] = []
        var serverEvents: [TLSConnectionEvent] = []
        /// Ciphertext bytes that crossed, each way.
        var bytesToServer = 0
        var bytesToClient = 0

        init(trusting ca: String, seed: UInt64 = 11) throws {
            var random = SeededRandom(seed: seed)
            let clientContext = try TLSClientContext(trustedPEM: Array(ca.utf8), random: &random)
            let serverContext = try TLSServerContext(pem: TLSClientTests.serverKeyAndChain, random: &random)
            client = try TLSConnection(.client(clientContext, serverName: "turn.test"))
            server = try TLSConnection(.server(serverContext))
        }

        /// Moves bytes until neither end has any, `chunk` bytes per `receive` (records and handshake
        /// messages split anywhere must still be read whole).
        mutating func run(chunk: Int = .max) {
            for _ in 0 ..< 40 {
                let toServer = client.takeTransmit()
                for start in stride(from: 0, to: toServer.count, by: chunk) {
                    server.receive(Array(toServer[start ..< min(start + chunk, toServer.count)]))
                }
                let toClient = server.takeTransmit()
                for start in stride(from: 0, to: toClient.count, by: chunk) {
                    client.receive(Array(toClient[start ..< min(start + chunk, toClient.count)]))
                }
                bytesToServer += toServer.count
                bytesToClient += toClient.count
                clientEvents += client.takeEvents()
                serverEvents += server.takeEvents()
                if toServer.isEmpty, toClient.isEmpty { return }
            }
            Issue.record("the two ends never went quiet")
        }
    }

    static func isEstablished(_ events: [TLSConnectionEvent]) -> Bool {
        if case .established(let version, let suite)? = events.first {
            // 2.28 speaks TLS 1.2 only; 3.6 prefers 1.3. The server offers ECDHE-ECDSA (1.2) only.
            return (version == "TLSv1.2" && suite.hasPrefix("TLS-ECDHE-ECDSA-WITH-")) || version == "TLSv1.3"
        }
        return false
    }

    @Test func bothEndsShakeHandsCarryDataBothWaysAndClose() throws {
        var pair = try Pair(trusting: TLSClientTests.testCA)
        #expect(pair.server.takeTransmit().isEmpty)  // a server speaks second
        pair.client.send(Array("GET".utf8))  // before the handshake: queued, sent once it is done
        #expect(pair.client.queuedPlaintextCount == 3)
        pair.run()
        #expect(pair.client.isEstablished && pair.server.isEstablished)
        #expect(Self.isEstablished(pair.clientEvents), "\(pair.clientEvents)")
        #expect(Self.isEstablished(pair.serverEvents), "\(pair.serverEvents)")
        #expect(pair.clientEvents.first == pair.serverEvents.first)  // the same version and suite
        #expect(pair.client.queuedPlaintextCount == 0)
        #expect(pair.server.takePlaintext() == Array("GET".utf8))

        // Both ways, more than one 16 KiB record each; ciphertext is larger than the plaintext.
        let up = (0 ..< 50_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let down = (0 ..< 70_000).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        let (sentUp, sentDown) = (pair.bytesToServer, pair.bytesToClient)
        pair.client.send(up)
        pair.server.send(down)
        pair.run()
        #expect(pair.server.takePlaintext() == up)
        #expect(pair.client.takePlaintext() == down)
        #expect(pair.bytesToServer - sentUp > up.count)
        #expect(pair.bytesToClient - sentDown > down.count)
        #expect(pair.clientEvents.count == 1 && pair.serverEvents.count == 1)

        // The client closes after a last write: the server reads it, then close_notify.
        pair.client.send(Array("bye".utf8))
        pair.client.close()
        #expect(pair.client.isFinished)
        pair.run()
        #expect(pair.server.takePlaintext() == Array("bye".utf8))
        #expect(pair.serverEvents.last == .closed)
        #expect(pair.server.isFinished)
        // Nothing moves any more, either way.
        pair.client.send([1, 2, 3])
        pair.server.send([4, 5, 6])
        #expect(pair.client.takeTransmit().isEmpty && pair.server.takeTransmit().isEmpty)
    }

    @Test func theServerClosesAndRecordsSplitAnywhereAreReadWhole() throws {
        var pair = try Pair(trusting: TLSClientTests.testCA, seed: 12)
        pair.run(chunk: 1)  // the whole handshake a byte at a time
        #expect(pair.client.isEstablished && pair.server.isEstablished, "\(pair.clientEvents) \(pair.serverEvents)")
        let payload = (0 ..< 20_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        pair.server.send(payload)
        pair.server.close()
        pair.run(chunk: 977)
        #expect(pair.client.takePlaintext() == payload)
        #expect(pair.clientEvents.last == .closed)
        #expect(pair.client.isFinished)
        #expect(!pair.serverEvents.contains { if case .failed = $0 { true } else { false } })
    }

    @Test func aCertificateNoTrustedCASignedIsRefusedAndNothingIsRead() throws {
        var pair = try Pair(trusting: TLSClientTests.otherCA, seed: 13)
        pair.client.send(Array("secret".utf8))
        pair.run()
        #expect(!pair.client.isEstablished && pair.client.isFinished)
        guard case .failed(.untrustedCertificate(let reasons))? = pair.clientEvents.last else {
            Issue.record("client: \(pair.clientEvents)")
            return
        }
        #expect(reasons.contains("not correctly signed by the trusted CA"), "\(reasons)")
        // The client's alert ends the server's handshake as a library failure, not a close.
        #expect(!pair.server.isEstablished && pair.server.isFinished, "\(pair.serverEvents)")
        guard case .failed(.library)? = pair.serverEvents.last else {
            Issue.record("server: \(pair.serverEvents)")
            return
        }
        #expect(pair.server.takePlaintext().isEmpty)
        #expect(pair.client.takePlaintext().isEmpty)
    }
}
