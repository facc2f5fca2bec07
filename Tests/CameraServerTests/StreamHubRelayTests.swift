@testable import CameraServer
import ICE
import Logging
import NIOPosix
import RTCBase
import SDP
import STUN
import Testing
import TURN

/// The hub's TURN relay (issue 19) against a scripted TURN server on loopback: the allocation is
/// asked for at once and its relayed address offered; a viewer's check that comes through the relay
/// (a Data indication) reaches its session and is answered through the relay (a Send indication,
/// after a CreatePermission); the relay pair, once valid and nominated, gets a channel, and what
/// follows goes in ChannelData; a viewer that leaves gives up its permission.
@Suite(.serialized) struct StreamHubRelayTests {
    static let viewerPassword = "viewerPasswordOf24Chars0"
    /// Loopback stand-ins (tests send nowhere else): a relayed address and a peer on it are
    /// "private" to the agent as the real ones are public, so they are paired.
    static let relayed = TransportAddress(host: "127.0.0.2", port: 40_000)!
    static let mapped = TransportAddress(host: "127.0.0.3", port: 40_001)!
    static let peer = TransportAddress(host: "127.0.0.4", port: 5_000)!

    /// The next message the hub sent the TURN server that `matches` (others are skipped).
    func next(_ server: LoopbackReceiver, _ what: String, where matches: (STUNMessage) -> Bool) throws -> STUNMessage {
        for _ in 0 ..< 20 {
            guard let datagram = server.receive(1).first else { break }
            if let message = try? STUNMessage(parsing: datagram), matches(message) { return message }
        }
        throw TestFailure("the hub sent the TURN server no \(what)")
    }

    struct TestFailure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// A relay on a public address gets no permission for a viewer's private addresses (it could
    /// not reach them; a server that denies them answers 403), nor for the other family; a viewer
    /// that leaves takes its permissions with it, unless another viewer has the same address.
    @Test func permissionsOnlyWhereTheRelayReaches() {
        var relay = MediaRelay(configuration: RelayServerConfiguration(
            server: TransportAddress(host: "192.0.2.10", port: 3478)!, spelled: "turn:192.0.2.10",
            credentials: .sharedSecret("s", user: "cam")), now: MonotonicTime(seconds: 10))
        let now = MonotonicTime(seconds: 10)
        for ip in ["192.168.1.20", "10.0.0.3", "2001:db8::2"] {
            _ = relay.permit(TransportAddress.IP(parsing: ip)!, for: "a", now: now)
        }
        #expect(relay.client.permissionCount == 0)
        _ = relay.permit(.v4(198, 51, 100, 7), for: "a", now: now)
        _ = relay.permit(.v4(198, 51, 100, 7), for: "b", now: now)
        _ = relay.permit(.v4(198, 51, 100, 8), for: "a", now: now)
        #expect(relay.client.permissionCount == 2 && relay.viewersWithPermissions == 2)
        relay.viewerLeft("a")
        #expect(relay.client.permissionCount == 1 && relay.viewersWithPermissions == 1)   // 198.51.100.7 is b's too
        relay.viewerLeft("b")
        #expect(relay.client.permissionCount == 0)
    }

    @Test func viewerThroughTheRelay() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let socket = try MediaSocket(port: 0, segmentationOffload: false, logger: Logger(label: "test"))
        defer { socket.close() }
        let hub = StreamHubFullICETests.makeHub(group: group, mediaPort: socket.localPort)
        hub.attach(socket: socket)
        defer { hub.closeAll() }
        let server = try LoopbackReceiver()
        hub.configureRelay(RelayServerConfiguration(server: server.address, spelled: "turn:127.0.0.1",
                                                    credentials: .longTerm(user: "camera", password: "pw")))

        // The Allocate comes at once; this server grants it without a challenge.
        let allocate = try next(server, "Allocate") { $0.method == TURNMethod.allocate && $0.messageClass == .request }
        let granted = STUNMessage(method: TURNMethod.allocate, messageClass: .successResponse, transactionID: allocate.transactionID,
                                  attributes: [.unknown(type: TURNAttributeType.xorRelayedAddress,
                                                        value: STUNAttribute.xorAddressValue(Self.relayed, transactionID: allocate.transactionID)),
                                               .xorMappedAddress(Self.mapped), .lifetime(seconds: 600)])
            .serialized(integrityKey: nil, fingerprint: true)
        hub.receive(granted, from: TransportAddress(ip: .v4(127, 0, 0, 1), port: server.port &+ 1))   // not the server: ignored
        #expect(hub.relayStatus?.relayed == nil)
        hub.receive(granted, from: server.address)
        #expect(hub.relayStatus?.relayed == Self.relayed && hub.relayStatus?.mapped == Self.mapped)

        // The answer offers it: type preference 0, the mapped address as raddr/rport.
        var offer = RecvOnlyOfferBuilder.offer(iceUfrag: "vwer", icePassword: Self.viewerPassword,
                                               fingerprintSHA256: StreamHubTests.certificate.fingerprintSDP)
        offer.media[0].attributes.append(SDPAttribute("candidate", "1 1 udp 1694498815 \(Self.peer.ip) \(Self.peer.port) typ srflx raddr 0.0.0.0 rport 9"))
        let (id, answerText) = try hub.createSession(offer: offer.serialized())
        #expect(answerText.contains("a=candidate:r1 1 udp 16777215 127.0.0.2 40000 typ relay raddr 127.0.0.3 rport 40001\r\n"))
        let answer = try SessionDescription(parsing: answerText)
        let ufrag = try #require(answer.media[0].iceUfrag), password = try #require(answer.media[0].icePassword)

        // The viewer's nominating check, through the relay: a Data indication from the server.
        let checkID = Array(repeating: UInt8(7), count: 12)
        let check = STUNMessage(messageClass: .request, transactionID: checkID, attributes: [
            .username("\(ufrag):vwer"), .priority(1_862_270_975), .iceControlling(77), .useCandidate,
        ]).serialized(integrityKey: Array(password.utf8), fingerprint: true)
        let indicationID = Array(repeating: UInt8(1), count: 12)
        let dataIndication = STUNMessage(method: TURNMethod.data, messageClass: .indication, transactionID: indicationID,
                                         attributes: [.xorPeerAddress(Self.peer, transactionID: indicationID), .data(check)])
            .serialized(integrityKey: nil, fingerprint: false)
        hub.receive(dataIndication, from: server.address)

        // Answered through the relay, after the peer's permission was asked for.
        let permission = try next(server, "CreatePermission") { $0.method == TURNMethod.createPermission }
        #expect(permission.xorPeerAddress?.ip == Self.peer.ip)
        var answered: STUNMessage?
        var triggered: STUNMessage?
        for _ in 0 ..< 6 where answered == nil || triggered == nil {
            let send = try next(server, "Send indication") { $0.method == TURNMethod.send && $0.messageClass == .indication }
            #expect(send.xorPeerAddress == Self.peer)
            guard let inner = try? STUNMessage(parsing: try #require(send.data)) else { continue }
            if inner.messageClass == .successResponse, inner.transactionID == checkID { answered = inner }
            if inner.messageClass == .request, inner.iceControlled != nil { triggered = inner }   // its check back (§7.3.1.4)
        }
        #expect(try #require(answered).xorMappedAddress == Self.peer)
        let back = try #require(triggered)
        #expect(hub.lock.withLock { hub.viewers[id]?.paths } == [.relay(Self.peer)])
        #expect(hub.viewerStatuses().first?.icePair == nil)   // nominated, not yet valid both ways

        // The viewer answers rtcam's check: the relay pair is valid and nominated, so selected.
        let success = STUNMessage(messageClass: .successResponse, transactionID: back.transactionID,
                                  attributes: [.xorMappedAddress(Self.relayed)])
            .serialized(integrityKey: Array(Self.viewerPassword.utf8), fingerprint: true)
        let successID = Array(repeating: UInt8(2), count: 12)
        hub.receive(STUNMessage(method: TURNMethod.data, messageClass: .indication, transactionID: successID,
                                attributes: [.xorPeerAddress(Self.peer, transactionID: successID), .data(success)])
                        .serialized(integrityKey: nil, fingerprint: false), from: server.address)
        let pair = try #require(hub.viewerStatuses().first?.icePair)
        #expect(pair.local.kind == .relayed && pair.local.address == Self.relayed && pair.path == .relay(Self.peer))
        #expect(hub.viewerStatuses().first?.remoteAddress == "127.0.0.4:5000 via relay")

        // Selected: a channel for it. Bound, what rtcam sends the viewer goes as ChannelData (here
        // its answer to the viewer's next check, RFC 7675 consent).
        let bind = try next(server, "ChannelBind") { $0.method == TURNMethod.channelBind }
        #expect(bind.channelNumber == 0x4000 && bind.xorPeerAddress == Self.peer)
        hub.receive(STUNMessage(method: TURNMethod.channelBind, messageClass: .successResponse, transactionID: bind.transactionID,
                                attributes: []).serialized(integrityKey: nil, fingerprint: true), from: server.address)
        let consentID = Array(repeating: UInt8(8), count: 12)
        let consent = STUNMessage(messageClass: .request, transactionID: consentID, attributes: [
            .username("\(ufrag):vwer"), .priority(1_862_270_975), .iceControlling(77),
        ]).serialized(integrityKey: Array(password.utf8), fingerprint: true)
        // From the viewer on the bound channel, as the server would now deliver it.
        hub.receive(ChannelData.frame(consent, channel: 0x4000, padded: false), from: server.address)
        var answeredOnChannel: STUNMessage?
        for _ in 0 ..< 10 where answeredOnChannel == nil {
            guard let datagram = server.receive(1).first, let framed = ChannelData.parse(datagram) else { continue }
            #expect(framed.channel == 0x4000)
            if let inner = try? STUNMessage(parsing: Array(framed.payload)), inner.transactionID == consentID { answeredOnChannel = inner }
        }
        #expect(try #require(answeredOnChannel, "no answer in ChannelData").messageClass == .successResponse)

        // The viewer leaves: its permission is no longer kept.
        #expect(hub.relayStatus?.permissions == 1)
        #expect(hub.deleteSession(id: id))
        #expect(hub.relayStatus?.permissions == 0)
    }
}
