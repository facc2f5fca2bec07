@testable import CameraServer
import DTLS
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import RTCBase
import STUN
import Testing
import TURN

/// The hub's allocation over TCP and TLS (issue 19: `turn:…?transport=tcp`, `turns:`) against a
/// scripted TURN server on loopback: the Allocate goes once the connection (and its TLS handshake)
/// is up, framed on the stream; the relayed address is offered; a connection that drops takes the
/// allocation with it and a new one is made on a new connection; a certificate from another CA is
/// refused with the reason in /api/status.
@Suite(.serialized) struct StreamHubTURNStreamTests {
    static let relayed = TransportAddress(host: "127.0.0.2", port: 40_000)!

    /// A TURN server's side of one or more TCP connections: what arrives, split into messages
    /// (decrypted first when `tls` is given); `reply` sends on the newest connection.
    final class ScriptedServer: @unchecked Sendable {
        let lock = NIOLock()
        var messages: [[UInt8]] = []
        var connections: [Channel] = []
        var tlsConnections: [ObjectIdentifier: TLSConnection] = [:]
        var framers: [ObjectIdentifier: TURNStreamFramer] = [:]
        var failures: [String] = []
        let tlsContext: TLSServerContext?
        var channel: Channel!

        init(group: EventLoopGroup, tls: TLSServerContext?) throws {
            tlsContext = tls
            channel = try ServerBootstrap(group: group)
                .childChannelInitializer { [self] child in
                    child.eventLoop.makeCompletedFuture {
                        try child.pipeline.syncOperations.addHandler(Reader(server: self))
                        lock.withLock {
                            connections.append(child)
                            framers[ObjectIdentifier(child)] = TURNStreamFramer()
                            if let tlsContext { tlsConnections[ObjectIdentifier(child)] = try? TLSConnection(.server(tlsContext)) }
                        }
                    }
                }
                .bind(host: "127.0.0.1", port: 0).wait()
        }

        var address: TransportAddress { TransportAddress(host: "127.0.0.1", port: UInt16(channel.localAddress!.port!))! }
        var connectionCount: Int { lock.withLock { connections.count } }

        final class Reader: ChannelInboundHandler, @unchecked Sendable {
            typealias InboundIn = ByteBuffer
            let server: ScriptedServer
            init(server: ScriptedServer) { self.server = server }
            func channelRead(context: ChannelHandlerContext, data: NIOAny) {
                server.read(Array(unwrapInboundIn(data).readableBytesView), on: context.channel)
            }
        }

        func read(_ bytes: [UInt8], on channel: Channel) {
            let key = ObjectIdentifier(channel)
            var plaintext = bytes
            if let tls = lock.withLock({ tlsConnections[key] }) {
                tls.receive(bytes)
                for case let .failed(error) in tls.takeEvents() { lock.withLock { failures.append("\(error)") } }
                let transmit = tls.takeTransmit()
                if !transmit.isEmpty { channel.writeAndFlush(channel.allocator.buffer(bytes: transmit), promise: nil) }
                plaintext = tls.takePlaintext()
            }
            lock.withLock {
                messages += framers[key]!.append(plaintext)
            }
        }

        /// The next message that `matches`, waiting up to `seconds`.
        func next(_ what: String, seconds: Int = 5, where matches: (STUNMessage) -> Bool) throws -> STUNMessage {
            for _ in 0 ..< seconds * 100 {
                let taken = lock.withLock { () -> [[UInt8]] in defer { messages = [] }; return messages }
                for message in taken {
                    if let parsed = try? STUNMessage(parsing: message), matches(parsed) {
                        let rest = taken.drop { $0 != message }.dropFirst()
                        lock.withLock { messages.insert(contentsOf: rest, at: 0) }
                        return parsed
                    }
                }
                usleep(10_000)
            }
            throw StreamHubRelayTests.TestFailure("the server got no \(what)")
        }

        func reply(_ bytes: [UInt8]) throws {
            let channel = lock.withLock { connections.last! }
            // Used on the channel's loop only (where `read` uses it too).
            nonisolated(unsafe) let tls = lock.withLock { tlsConnections[ObjectIdentifier(channel)] }
            try channel.eventLoop.submit {
                var out = bytes
                if let tls {
                    tls.send(bytes)
                    out = tls.takeTransmit()
                }
                channel.writeAndFlush(channel.allocator.buffer(bytes: out), promise: nil)
            }.wait()
        }

        func dropConnections() throws {
            for channel in lock.withLock({ connections }) { try? channel.close().wait() }
        }

        func grant(_ allocate: STUNMessage) throws {
            try reply(STUNMessage(method: TURNMethod.allocate, messageClass: .successResponse, transactionID: allocate.transactionID,
                                  attributes: [.unknown(type: TURNAttributeType.xorRelayedAddress,
                                                        value: STUNAttribute.xorAddressValue(StreamHubTURNStreamTests.relayed,
                                                                                             transactionID: allocate.transactionID)),
                                               .lifetime(seconds: 600)])
                .serialized(integrityKey: nil, fingerprint: true))
        }
    }

    func waitFor(seconds: Int = 5, _ condition: () -> Bool) -> Bool {
        for _ in 0 ..< seconds * 100 {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }

    static func isAllocate(_ message: STUNMessage) -> Bool {
        message.method == TURNMethod.allocate && message.messageClass == .request
    }

    func configuration(_ server: ScriptedServer, transport: TURNServerSpelling.Transport, name: String = "127.0.0.1") -> RelayServerConfiguration {
        RelayServerConfiguration(server: server.address, spelled: transport == .tls ? "turns:\(name)" : "turn:\(name)?transport=tcp",
                                 credentials: .longTerm(user: "camera", password: "pw"), transport: transport, serverName: name)
    }

    @Test func allocationOverTCPIsMadeAgainOnANewConnection() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let server = try ScriptedServer(group: group, tls: nil)
        let hub = StreamHubFullICETests.makeHub(group: group, mediaPort: 9)
        defer { hub.detachSocket() }
        hub.configureRelay(configuration(server, transport: .tcp))
        #expect(hub.relayStatus?.transport == "tcp")

        try server.grant(try server.next("Allocate", where: Self.isAllocate))
        #expect(waitFor { hub.relayStatus?.relayed == Self.relayed })
        #expect(hub.relayStatus?.connection == "ready" && hub.relayStatus?.error == nil)
        let (_, answer) = try hub.createSession(offer: StreamHubTests.offer())
        #expect(answer.contains("127.0.0.2 40000 typ relay"))

        // The connection drops: the allocation went with it (no relay candidate), and a new
        // connection about a second later asks for a new one.
        try server.dropConnections()
        #expect(waitFor { hub.relayStatus?.relayed == nil })
        #expect(hub.relayStatus?.connection == "waiting" || hub.relayStatus?.connection == "connecting")
        let again = try server.next("second Allocate", where: Self.isAllocate)
        #expect(server.connectionCount == 2)
        try server.grant(again)
        #expect(waitFor { hub.relayStatus?.relayed == Self.relayed })
        #expect(hub.relayStatus?.connections == 2)
    }

    static func serverIdentity() throws -> (pem: String, certificate: String) {
        var random = SeededRandom(seed: 19)
        let identity = try DTLSCertificate.generate(subjectAltNames: [.dns("turn.test"), .dns("127.0.0.1"), .ip([127, 0, 0, 1])],
                                                    random: &random)
        let begin = try #require(identity.pem.firstRange(of: "-----BEGIN CERTIFICATE-----"))
        return (identity.pem, String(identity.pem[begin.lowerBound...]))
    }

    @Test func allocationOverTLSWithATrustedCertificate() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        var random = SeededRandom(seed: 5)
        let (pem, certificate) = try Self.serverIdentity()
        let server = try ScriptedServer(group: group, tls: try TLSServerContext(pem: pem, random: &random))
        let hub = StreamHubFullICETests.makeHub(group: group, mediaPort: 9)
        defer { hub.detachSocket() }
        hub.configureRelay(configuration(server, transport: .tls, name: "turn.test"),
                           tlsContext: try TLSClientContext(trustedPEM: Array(certificate.utf8), random: &random))
        let allocate = try server.next("Allocate", where: Self.isAllocate)
        try server.grant(allocate)
        #expect(waitFor { hub.relayStatus?.relayed == Self.relayed })
        #expect(hub.relayStatus?.transport == "tls" && hub.relayStatus?.error == nil)
    }

    @Test func certificateOfAnotherIssuerIsRefusedWithTheReason() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        var random = SeededRandom(seed: 6)
        let (pem, _) = try Self.serverIdentity()
        var other = SeededRandom(seed: 7)
        let stranger = try DTLSCertificate.generate(subjectAltNames: [.dns("turn.test")], random: &other)
        let strangerCertificate = String(stranger.pem[stranger.pem.firstRange(of: "-----BEGIN CERTIFICATE-----")!.lowerBound...])
        let server = try ScriptedServer(group: group, tls: try TLSServerContext(pem: pem, random: &random))
        let hub = StreamHubFullICETests.makeHub(group: group, mediaPort: 9)
        defer { hub.detachSocket() }
        hub.configureRelay(configuration(server, transport: .tls, name: "turn.test"),
                           tlsContext: try TLSClientContext(trustedPEM: Array(strangerCertificate.utf8), random: &random))
        #expect(waitFor { hub.relayStatus?.error?.contains("not trusted") == true }, "\(hub.relayStatus?.error ?? "no error")")
        #expect(hub.relayStatus?.relayed == nil)
        #expect(throws: StreamHubRelayTests.TestFailure.self) { try server.next("Allocate", seconds: 1, where: Self.isAllocate) }
    }

    /// A stalled connection drops what does not fit in its queue (never blocks the hub); nothing is
    /// queued before the connection is ready; reconnects back off from 1 s to a minute.
    @Test func queueIsBoundedAndReconnectsBackOff() {
        let link = TURNStreamLink(transport: .tcp, tlsContext: nil, problem: nil)
        #expect(!link.enqueue([1, 2, 3, 4]))
        link.phase = .ready
        let packet = [UInt8](repeating: 0x40, count: 1_200)
        var accepted = 0
        for _ in 0 ..< 300 where link.enqueue(packet) { accepted += 1 }
        #expect(accepted == TURNStreamLink.maximumQueuedBytes / 1_200)
        #expect(link.queuedBytes == accepted * 1_200 && link.outbound.count == link.queuedBytes)
        #expect(!link.enqueue(packet) && link.bytesDropped == (301 - accepted) * 1_200)
        #expect(link.enqueue([UInt8](repeating: 0, count: TURNStreamLink.maximumQueuedBytes - link.queuedBytes)))
        var delays: [Duration] = []
        for failures in 0 ..< 9 {
            link.failuresInARow = failures
            delays.append(link.reconnectDelay)
        }
        #expect(delays == [1, 2, 4, 8, 16, 32, 60, 60, 60].map { Duration.seconds($0) })
    }
}
