import ICE
import RTCBase
import Testing
import WebRTCSession
import WebRTCViewer

/// rtcam's session running the full ICE agent (issue 19) against the test viewer: it checks the
/// viewer back, selects only once its own check succeeded, and keeps consent by its own checks.
@Suite struct FullICESessionTests {
    static func fullICE(allowing allowed: Set<TransportAddress.IP>? = nil, remoteCandidates: [String] = [])
        -> (inout PeerSessionConfiguration) -> Void {
        { configuration in
            configuration.iceMode = .full
            configuration.localCandidates = [ICECandidate(address: TwoPeerHarness.cameraAddress, kind: .host,
                                                          localPreference: 65535, foundation: "1")]
            configuration.remoteCandidates = remoteCandidates
            configuration.allowedRemoteIPs = allowed
        }
    }

    @Test func connectsAndDeliversMedia() throws {
        let harness = try TwoPeerHarness(seed: 1, configure: Self.fullICE())
        let start = harness.now
        harness.start()
        #expect(harness.run(upTo: .seconds(2)) { harness.cameraConnected && harness.viewerConnected })
        // One more round trip than lite (the camera's triggered check back) before DTLS.
        #expect(harness.now - start < .milliseconds(600), "connected after \(harness.now - start)")
        harness.run(for: .seconds(3))
        #expect(harness.receivedAccessUnits.count >= 80)
        let pair = try #require(harness.camera.selectedICEPair)
        // The viewer offered no candidate: rtcam learned its address from its check (peer-reflexive).
        #expect(pair.remote.kind == .peerReflexive && pair.remote.address == TwoPeerHarness.viewerAddress)
        #expect(pair.local.kind == .host)
        let rtt = try #require(pair.roundTripTime)
        #expect(rtt >= .milliseconds(35) && rtt <= .milliseconds(80), "RTT \(rtt)")
    }

    /// The offer's candidate is checked at once, before the viewer's first check arrives.
    @Test func checksTheOfferedCandidate() throws {
        let offered = "1 1 udp 2122260223 \(TwoPeerHarness.viewerAddress.ip) \(TwoPeerHarness.viewerAddress.port) typ host"
        let harness = try TwoPeerHarness(seed: 2, configure: Self.fullICE(remoteCandidates: [offered]))
        harness.start()
        #expect(harness.run(upTo: .seconds(2)) { harness.cameraConnected && harness.viewerConnected })
        #expect(harness.camera.selectedICEPair?.remote.kind == .host)
    }

    /// Consent both ways over two minutes: the camera's own checks are answered by the viewer.
    @Test func keepsConsentForMinutes() throws {
        let harness = try TwoPeerHarness(seed: 5, configure: Self.fullICE())
        harness.start(media: false)
        #expect(harness.run(upTo: .seconds(2)) { harness.cameraConnected })
        harness.run(for: .seconds(120))
        #expect(harness.camera.state == .connected)
    }

    /// The viewer vanishes: the camera's consent checks go unanswered and it disconnects 30 s after
    /// the last answer (RFC 7675 §5.1).
    @Test func losesConsentWhenTheViewerVanishes() throws {
        let harness = try TwoPeerHarness(seed: 3, configure: Self.fullICE())
        harness.start(media: false)
        #expect(harness.run(upTo: .seconds(2)) { harness.cameraConnected })
        harness.viewerAlive = false
        let silentSince = harness.now
        harness.run(for: .seconds(40))
        let lost = try #require(harness.cameraEvents.first { if case .disconnected = $0.1 { return true }; return false }?.0)
        #expect(lost - silentSince >= .seconds(24) && lost - silentSince <= .seconds(31), "consent lost after \(lost - silentSince)")
    }

    /// A viewer whose IP is not allowed gets no answer and no check: nothing connects.
    @Test func ignoresViewersOutsideTheAllowedIPs() throws {
        let harness = try TwoPeerHarness(seed: 4, configure: Self.fullICE(allowing: [.v4(192, 0, 2, 1)]))
        harness.start()
        harness.run(for: .seconds(3))
        #expect(!harness.cameraConnected)
        #expect(harness.camera.statistics.checksFromForeignAddresses > 0)
        #expect(harness.camera.selectedICEPair == nil)
    }

    /// A trickled candidate (WHEP PATCH) is checked, and its IP may send checks from then on.
    @Test func trickledCandidateIsAllowedAndChecked() throws {
        let harness = try TwoPeerHarness(seed: 6, configure: Self.fullICE(allowing: [.v4(192, 0, 2, 1)]))
        let trickled = "2 1 udp 2122260223 \(TwoPeerHarness.viewerAddress.ip) \(TwoPeerHarness.viewerAddress.port) typ host"
        harness.camera.addRemoteCandidates([trickled], endOfCandidates: true, now: harness.now)
        harness.start()
        #expect(harness.run(upTo: .seconds(2)) { harness.cameraConnected && harness.viewerConnected })
        #expect(harness.camera.selectedICEPair?.remote.kind == .host)
    }
}
