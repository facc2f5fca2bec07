@testable import CameraServer
import DTLS
import Logging
import MediaSources
import NIOPosix
import RTCBase
import SDP
import Synchronization
import Testing
import SystemSupport

/// What the hub asked of the encoders.
final class RecordingEncoderControl: EncoderControl, Sendable {
    private let state = Mutex<(keyframes: Int, presence: [Bool], caps: [Int?], reducedKeyframes: Int, reduced: [Int?],
                               linkCongested: [Bool])>((0, [], [], 0, [], []))
    func requestKeyframe() { state.withLock { $0.keyframes += 1 } }
    func requestReducedKeyframe() { state.withLock { $0.reducedKeyframes += 1 } }
    func setReducedLayer(kbps: Int?) { state.withLock { $0.reduced.append(kbps) } }
    var reducedKeyframes: Int { state.withLock { $0.reducedKeyframes } }
    var reducedLayer: [Int?] { state.withLock { $0.reduced } }
    func setViewersPresent(_ present: Bool) { state.withLock { $0.presence.append(present) } }
    func setBitrateCap(kbps: Int?) { state.withLock { $0.caps.append(kbps) } }
    func setViewerLinksCongested(full: Bool, reduced: Bool) { state.withLock { $0.linkCongested.append(full) } }
    var viewerLinkCongested: [Bool] { state.withLock { $0.linkCongested } }
    var keyframes: Int { state.withLock { $0.keyframes } }
    var presence: [Bool] { state.withLock { $0.presence } }
    var bitrateCaps: [Int?] { state.withLock { $0.caps } }
}

/// The WHEP registry of the hub (RFC 9725 §4): create, patch (trickle, ICE restart), delete, limits.
@Suite(.serialized) struct StreamHubTests {
    static let certificate: DTLSCertificate = {
        var random = SystemRandomNumberGenerator()
        return try! DTLSCertificate.generate(commonName: "test", random: &random)
    }()

    final class Fixture {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let encoders = RecordingEncoderControl()
        let hub: StreamHub

        init(maximumViewers: Int = 2, pendingQuota: Int = 4) {
            hub = StreamHub(loop: group.next(),
                            settings: HubSettings(maximumViewers: maximumViewers, candidateAddresses: [.v4(127, 0, 0, 1)],
                                                  mediaPort: 9, h264ProfileLevelID: "42e01f", hasVideo: true, hasAudio: true,
                                                  pendingSessionQuota: pendingQuota),
                            certificate: StreamHubTests.certificate, logger: Logger(label: "test"), encoders: encoders)
        }

        deinit { try? group.syncShutdownGracefully() }
    }

    static func offer(ufrag: String = "vwer", profiles: [String] = ["42e01f"]) -> String {
        RecvOnlyOfferBuilder.offer(iceUfrag: ufrag, icePassword: "viewerPasswordOf24Chars0",
                                   fingerprintSHA256: certificate.fingerprintSDP, h264ProfileLevelIDs: profiles).serialized()
    }

    @Test("POST: an answer that is ICE-lite with the camera's candidate; the first viewer starts the encoders")
    func create() throws {
        let fixture = Fixture()
        let (id, answerText) = try fixture.hub.createSession(offer: Self.offer())
        let answer = try SessionDescription(parsing: answerText)
        #expect(answer.isICELite)
        #expect(answerText.contains("a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host"))
        #expect(id.count == 24 && id.allSatisfy(\.isHexDigit))
        #expect(fixture.hub.viewerCount == 1 && fixture.hub.sessionExists(id: id))
        #expect(fixture.hub.entityTag(of: id) == "\"\(answer.media[0].iceUfrag!)\"")
        #expect(fixture.encoders.presence == [true])
        _ = try fixture.hub.createSession(offer: Self.offer(ufrag: "vwr2"))
        #expect(fixture.encoders.presence == [true], "only the first viewer's arrival is news")
    }

    @Test("POST errors: the viewer limit, a malformed offer, no common codec; none of them adds a viewer")
    func createErrors() throws {
        let fixture = Fixture(maximumViewers: 1, pendingQuota: 0)
        #expect(throws: WHEPError.malformedOffer("malformed SDP line 1: x")) { try fixture.hub.createSession(offer: "x") }
        #expect {
            try fixture.hub.createSession(offer: Self.offer(profiles: ["640c1f"]))
        } throws: { error in
            if case .noCommonCodec = error as? WHEPError { true } else { false }
        }
        #expect(fixture.hub.viewerCount == 0)
        _ = try fixture.hub.createSession(offer: Self.offer())
        #expect(throws: WHEPError.viewerLimitReached(limit: 1)) { try fixture.hub.createSession(offer: Self.offer(ufrag: "vwr2")) }
        #expect(fixture.hub.viewerCount == 1)
    }

    @Test("one address's offers that never connect: two are held, the rest refused (429); another address still gets in")
    func pendingPerAddress() throws {
        let fixture = Fixture(maximumViewers: 1)
        let attacker = TransportAddress.IP.v4(192, 0, 2, 66)
        var refused = 0
        for index in 0..<10 {
            do {
                _ = try fixture.hub.createSession(offer: Self.offer(ufrag: "bad\(index)"), from: attacker)
            } catch {
                #expect(error == .tooManyPending(limit: 2))
                refused += 1
            }
        }
        #expect(refused == 8 && fixture.hub.viewerCount == 2)
        let (viewer, _) = try fixture.hub.createSession(offer: Self.offer(ufrag: "good"), from: .v4(192, 0, 2, 7))
        #expect(fixture.hub.sessionExists(id: viewer))
    }

    @Test("offers from many addresses of one IPv6 /64 count as one host's; another /64 still gets in")
    func pendingPerIPv6Host() throws {
        let fixture = Fixture(maximumViewers: 1)
        var refused = 0
        for index in 0..<6 {
            do {
                let address = try #require(TransportAddress.IP(parsing: "2001:db8:0:66::\(index + 1)"))
                _ = try fixture.hub.createSession(offer: Self.offer(ufrag: "six\(index)"), from: address)
            } catch let error as WHEPError {
                #expect(error == .tooManyPending(limit: 2))
                refused += 1
            }
        }
        #expect(refused == 4 && fixture.hub.viewerCount == 2)
        let neighbour = try #require(TransportAddress.IP(parsing: "2001:db8:0:67::1"))
        let (viewer, _) = try fixture.hub.createSession(offer: Self.offer(ufrag: "good"), from: neighbour)
        #expect(fixture.hub.sessionExists(id: viewer))
    }

    @Test("PATCH: trickle is acknowledged; an ICE restart gives new credentials and a new ETag; If-Match is checked")
    func patch() throws {
        let fixture = Fixture()
        let (id, _) = try fixture.hub.createSession(offer: Self.offer())
        let tag = try #require(fixture.hub.entityTag(of: id))
        let trickle = "a=mid:0\r\na=candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host\r\n"
        #expect(try fixture.hub.patchSession(id: id, fragment: trickle, ifMatch: nil) == .trickled)
        #expect(throws: WHEPError.unknownSession) { try fixture.hub.patchSession(id: "00", fragment: trickle, ifMatch: nil) }

        let restart = "a=ice-ufrag:new1\r\na=ice-pwd:newPasswordOf24Chars000\r\n"
        #expect(throws: WHEPError.preconditionFailed) { try fixture.hub.patchSession(id: id, fragment: restart, ifMatch: "\"other\"") }
        guard case let .restarted(fragment, newTag) = try fixture.hub.patchSession(id: id, fragment: restart, ifMatch: tag) else {
            Issue.record("no restart")
            return
        }
        #expect(newTag != tag && fixture.hub.entityTag(of: id) == newTag)
        let parsed = try TrickleICEFragment(parsing: fragment)
        #expect(parsed.iceUfrag.map { "\"\($0)\"" } == newTag && parsed.icePassword?.count == 24)
        #expect(throws: WHEPError.preconditionFailed) { try fixture.hub.patchSession(id: id, fragment: restart, ifMatch: tag) }

        // Half a restart, or credentials outside RFC 8839's grammar: 400, and the session is unchanged.
        for bad in ["a=ice-ufrag:only\r\n", "a=ice-ufrag:ab\r\na=ice-pwd:newPasswordOf24Chars000\r\n",
                    "a=ice-ufrag:new2\r\na=ice-pwd:has space in it 0123456789\r\n"] {
            #expect {
                try fixture.hub.patchSession(id: id, fragment: bad, ifMatch: "*")
            } throws: { error in
                if case .malformedOffer = error as? WHEPError { true } else { false }
            }
        }
        #expect(fixture.hub.entityTag(of: id) == newTag)
    }

    @Test("closeSessions(where:) ends exactly the sessions whose credential it picks, at once")
    func closeByCredential() throws {
        let fixture = Fixture(maximumViewers: 3)
        let (open, _) = try fixture.hub.createSession(offer: Self.offer(ufrag: "vwr1"))
        let (owner, _) = try fixture.hub.createSession(offer: Self.offer(ufrag: "vwr2"), credential: .session(id: "s1"))
        let (player, _) = try fixture.hub.createSession(offer: Self.offer(ufrag: "vwr3"), credential: .token(id: "t1"))
        #expect(fixture.hub.closeSessions(where: { $0 == .token(id: "t1") }, reason: "revoked") == 1)
        #expect(!fixture.hub.sessionExists(id: player))
        #expect(fixture.hub.closeSessions(where: { $0 == .none }, reason: "protection on") == 1)
        #expect(!fixture.hub.sessionExists(id: open) && fixture.hub.sessionExists(id: owner))
        #expect(fixture.hub.closeSessions(where: { _ in false }, reason: "nothing") == 0)
        #expect(fixture.hub.closeSessions(where: { $0 == .session(id: "s1") }, reason: "logged out") == 1)
        #expect(fixture.hub.viewerCount == 0 && fixture.encoders.presence == [true, false])
    }

    @Test("DELETE ends the session at once; the last viewer leaving stops the encoders; shutdown refuses new ones")
    func deleteAndClose() throws {
        let fixture = Fixture()
        let (id, _) = try fixture.hub.createSession(offer: Self.offer())
        #expect(fixture.hub.deleteSession(id: id))
        #expect(!fixture.hub.deleteSession(id: id))
        #expect(fixture.hub.viewerCount == 0 && fixture.encoders.presence == [true, false])
        _ = try fixture.hub.createSession(offer: Self.offer())
        fixture.hub.closeAll()
        #expect(fixture.hub.viewerCount == 0)
        #expect(throws: WHEPError.stopping) { try fixture.hub.createSession(offer: Self.offer()) }
    }

    @Test("keyframe requests reach the encoder merged: one at once, the rest as one retry after 300 ms", .timeLimit(.minutes(1)))
    func keyframesMerged() throws {
        let fixture = Fixture()
        for _ in 0..<5 { fixture.hub.requestKeyframe() }
        #expect(fixture.encoders.keyframes == 1)
        let deadline = MonotonicClock.now() + .seconds(5)
        while fixture.encoders.keyframes < 2, MonotonicClock.now() < deadline {
            DedicatedThread.sleep(until: (MonotonicClock.now() + .milliseconds(20)).nanoseconds)
        }
        #expect(fixture.encoders.keyframes == 2)
    }

    @Test("frames of a replaced pipeline are dropped; the current one's are taken")
    func generations() throws {
        let fixture = Fixture()
        _ = try fixture.hub.createSession(offer: Self.offer())
        fixture.hub.beginGeneration(3)
        let frame = EncodedVideoFrame(accessUnit: [0, 0, 0, 1, 0x65, 1, 2, 3], isKeyframe: true, captureTime: MonotonicTime(milliseconds: 1),
                                      width: 16, height: 16)
        // Nothing is connected, so nothing is sent either way; a stale generation must not even
        // be packetized (it would take sequence numbers from the current stream).
        fixture.hub.deliver(frame, generation: 2)
        #expect(fixture.hub.videoFramesPacketized == 0)
        fixture.hub.deliver(frame, generation: 3)
        #expect(fixture.hub.videoFramesPacketized == 1)
    }
}
