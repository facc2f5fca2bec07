import RTCBase
import STUN
import Testing
@testable import ICE

/// rtcam's agent with a relayed candidate (a TURN allocation, RFC 8656; the wrapping is the hub's and
/// is modelled by `SimulatedRelay`): every remote candidate is paired on the host base and on the
/// relay base, checks go out on both, and the relay pair is what media takes only when nothing direct
/// works (RFC 8445 §5.1.2.2: type preference 0).
@Suite struct ICERelayTests {
    static let relayedAddress = TransportAddress(host: "192.0.2.77", port: 50_001)!

    /// A scenario whose camera also has a relayed candidate, its related address the camera's
    /// server-reflexive one (what the TURN server's XOR-MAPPED-ADDRESS said).
    static func scenario(sameLAN: Bool = false, cameraNAT: SimulatedNAT? = nil, viewerNAT: SimulatedNAT? = nil,
                         cameraRole: ICERole = .controlled, viewerRole: ICERole = .controlling) -> ICEScenario {
        var scenario = ICEScenario(sameLAN: sameLAN, cameraNAT: cameraNAT, viewerNAT: viewerNAT,
                                   cameraRole: cameraRole, viewerRole: viewerRole,
                                   cameraTieBreaker: cameraRole == .controlling ? 9 : 5,
                                   viewerTieBreaker: viewerRole == .controlling ? 9 : 5)
        _ = scenario.net.addRelay(for: scenario.camera, relayedAddress: relayedAddress)
        let related = scenario.cameraAgent.localCandidates.first { $0.kind == .serverReflexive }?.address ?? ICEScenario.cameraHost
        scenario.net.endpoints[scenario.camera].agent.addLocalCandidate(
            ICECandidate(address: relayedAddress, kind: .relayed, localPreference: 65535, foundation: "r1", relatedAddress: related))
        return scenario
    }

    static var symmetric: SimulatedNAT {
        SimulatedNAT(publicIP: ICEScenario.viewerPublicIP, mapping: .addressAndPortDependent, filtering: .addressAndPortDependent)
    }

    static func portRestricted(_ ip: String) -> SimulatedNAT {
        SimulatedNAT(publicIP: ip, mapping: .endpointIndependent, filtering: .addressAndPortDependent)
    }

    static func symmetric(_ ip: String) -> SimulatedNAT {
        SimulatedNAT(publicIP: ip, mapping: .addressAndPortDependent, filtering: .addressAndPortDependent)
    }

    /// The case the relay exists for: a symmetric viewer NAT against a port-restricted camera NAT has
    /// no direct path (ICEFullAgentConnectivityTests.symmetricAgainstPortRestrictedFindsNoPath). With
    /// the relayed candidate the viewer's checks reach the relay from a new mapping (its IP has a
    /// permission: the camera checked its candidates through the relay), the camera learns that
    /// mapping as peer-reflexive on the relay base and its triggered check goes back the same way.
    @Test func symmetricAgainstPortRestrictedConnectsThroughTheRelay() throws {
        var scenario = Self.scenario(cameraNAT: Self.portRestricted(ICEScenario.cameraPublicIP), viewerNAT: Self.symmetric)
        let start = scenario.net.now
        scenario.connect()
        let viewerReflexive = try #require(scenario.viewerAgent.localCandidates.first { $0.kind == .serverReflexive })
        // One remote candidate, two pairs: host base and relay base.
        #expect(scenario.cameraAgent.pairState(on: .host(viewerReflexive.address)) != nil)
        #expect(scenario.cameraAgent.pairState(on: .relay(viewerReflexive.address)) != nil)
        #expect(scenario.cameraAgent.pairs.filter { $0.path.base == .relay }.count >= 2)
        // Not the viewer's private host address, though: no relay on the internet reaches a LAN.
        #expect(scenario.cameraAgent.pairState(on: .relay(ICEScenario.viewerHost)) == nil)
        #expect(scenario.cameraAgent.pairState(on: .host(ICEScenario.viewerHost)) != nil)
        #expect(!scenario.net.requestsSentOnPaths(by: scenario.camera).contains { $0.2 == .relay(ICEScenario.viewerHost) })
        // The camera's checks went out on the relay too, with the relay's (lowest) local preference.
        let relayedChecks = scenario.net.requestsSentOnPaths(by: scenario.camera).filter { $0.2.base == .relay }
        #expect(relayedChecks.count >= 2)
        let relayPriority = ICECandidate.priority(kind: .peerReflexive, localPreference: 65535)
        #expect(relayedChecks.allSatisfy { $0.1.priority == relayPriority })
        // Selected: the relay pair, on both sides, and only it.
        let paths = scenario.net.selectedPaths(of: scenario.camera)
        #expect(paths.count == 1)
        let path = try #require(paths.first)
        #expect(path.base == .relay)
        #expect(path.remote.ip == viewerReflexive.address.ip && path.remote.port != viewerReflexive.address.port)
        let pair = try #require(scenario.cameraAgent.selectedPair)
        #expect(pair.local.kind == .relayed && pair.local.address == Self.relayedAddress)
        #expect(pair.remote.kind == .peerReflexive && pair.path == path)
        #expect(scenario.net.selections(of: scenario.viewer) == [Self.relayedAddress])
        #expect(try #require(scenario.viewerAgent.selectedPair).remote.kind == .relayed)
        // Within a second and a half: the viewer's first check to the relay may come before the
        // camera's first relayed check made the permission, and is retransmitted after 500 ms.
        #expect(try #require(scenario.net.firstSelection(of: scenario.camera)) - start < .milliseconds(1500))
        // Nothing direct got through.
        #expect(scenario.cameraAgent.pairs.filter { $0.path.base == .host && $0.state == .succeeded }.isEmpty)
        #expect(scenario.net.relays[0].relayedIn > 0 && scenario.net.relays[0].relayedOut > 0)
    }

    /// Both symmetric: the same, through the relay.
    @Test func bothSymmetricConnectThroughTheRelay() throws {
        var scenario = Self.scenario(cameraNAT: Self.symmetric(ICEScenario.cameraPublicIP),
                                     viewerNAT: Self.symmetric(ICEScenario.viewerPublicIP))
        scenario.connect()
        let path = try #require(scenario.net.selectedPaths(of: scenario.camera).first)
        #expect(path.base == .relay)
        #expect(scenario.net.selectedPaths(of: scenario.camera).count == 1)
        #expect(try #require(scenario.cameraAgent.selectedPair).local.kind == .relayed)
        #expect(scenario.net.selections(of: scenario.viewer) == [Self.relayedAddress])
    }

    /// Consent (RFC 7675) on a relay pair: the consent checks go through the relay, are answered, and
    /// the pair holds well past the 30 s consent timeout.
    @Test func consentOnTheRelayPairKeepsIt() throws {
        var scenario = Self.scenario(cameraNAT: Self.portRestricted(ICEScenario.cameraPublicIP), viewerNAT: Self.symmetric)
        scenario.connect()
        let path = try #require(scenario.cameraAgent.selectedPath)
        let selectedAt = scenario.net.now
        scenario.net.run(for: .seconds(60))
        #expect(scenario.net.consentLosses(of: scenario.camera).isEmpty)
        #expect(scenario.net.consentLosses(of: scenario.viewer).isEmpty)
        let requests = scenario.net.requestsSentOnPaths(by: scenario.camera).filter { $0.0 > selectedAt }
        #expect(requests.filter { $0.2 == path }.count >= 10)   // one every 4-6 s for 60 s
        // Once the other pairs' checks have run out (7 transmissions, 39.5 s), only consent checks
        // go, all on the relay pair.
        let late = requests.filter { $0.0 > selectedAt + .seconds(41) }
        #expect(late.count >= 3 && late.allSatisfy { $0.2 == path })
        #expect(scenario.cameraAgent.selectedPath == path)
    }

    /// Both NATs endpoint-independent: a direct pair works, so it is selected and the relay pair,
    /// checked too, never is (its type preference is the lowest, RFC 8445 §5.1.2.2).
    @Test func aWorkingDirectPairWinsOverTheRelay() throws {
        var scenario = Self.scenario(cameraNAT: Self.portRestricted(ICEScenario.cameraPublicIP),
                                     viewerNAT: Self.portRestricted(ICEScenario.viewerPublicIP))
        scenario.connect(within: .seconds(8))
        let paths = scenario.net.selectedPaths(of: scenario.camera)
        #expect(paths.count == 1)
        #expect(paths.allSatisfy { $0.base == .host })
        let pair = try #require(scenario.cameraAgent.selectedPair)
        #expect(pair.local.kind == .serverReflexive && pair.remote.kind == .serverReflexive)
        #expect(!scenario.net.selections(of: scenario.viewer).contains(Self.relayedAddress))
        // The relay was a real alternative: its pair on the viewer's srflx candidate was checked.
        let viewerReflexive = try #require(scenario.viewerAgent.localCandidates.first { $0.kind == .serverReflexive })
        #expect(scenario.cameraAgent.pairState(on: .relay(viewerReflexive.address)) != nil)
        #expect(scenario.net.requestsSentOnPaths(by: scenario.camera).contains { $0.2 == .relay(viewerReflexive.address) })
    }

    /// One LAN: the host pair, never the relay.
    @Test func oneLANUsesTheHostPairNeverTheRelay() throws {
        var scenario = Self.scenario(sameLAN: true)
        scenario.connect()
        #expect(scenario.net.selectedPaths(of: scenario.camera) == [.host(ICEScenario.lanViewerHost)])
        #expect(scenario.net.selections(of: scenario.viewer) == [ICEScenario.cameraHost])
    }

    /// rtcam controlling (the role it would take against a lite peer): it nominates the relay pair
    /// when only that works, and a direct one when that works.
    @Test func controllingCameraNominatesTheRelayOnlyWhenNothingElseWorks() throws {
        var relayed = Self.scenario(cameraNAT: Self.portRestricted(ICEScenario.cameraPublicIP), viewerNAT: Self.symmetric,
                                    cameraRole: .controlling, viewerRole: .controlled)
        relayed.connect()
        #expect(try #require(relayed.net.selectedPaths(of: relayed.camera).first).base == .relay)
        #expect(relayed.net.requestsSentOnPaths(by: relayed.camera).contains { $0.1.hasUseCandidate && $0.2.base == .relay })

        var direct = Self.scenario(cameraNAT: Self.portRestricted(ICEScenario.cameraPublicIP),
                                   viewerNAT: Self.portRestricted(ICEScenario.viewerPublicIP),
                                   cameraRole: .controlling, viewerRole: .controlled)
        direct.connect(within: .seconds(8))
        let paths = direct.net.selectedPaths(of: direct.camera)
        #expect(paths.count == 1 && paths.allSatisfy { $0.base == .host })
        #expect(!direct.net.requestsSentOnPaths(by: direct.camera).contains { $0.1.hasUseCandidate && $0.2.base == .relay })
    }

    /// A response counts only on the base its request left from: the right transaction and remote
    /// address, but straight to the socket instead of through the relay, is not the answer.
    @Test func aResponseOnTheOtherBaseIsNotTheAnswer() throws {
        var camera = ICEParty.agent(.controlled, camera: true, host: ICEScenario.cameraHost, tieBreaker: 5, seed: 3)
        camera.addLocalCandidate(ICECandidate(address: Self.relayedAddress, kind: .relayed, localPreference: 65535,
                                              foundation: "r1", relatedAddress: ICEScenario.cameraHost))
        let viewer = TransportAddress(host: "198.51.100.9", port: 7000)!
        var now = MonotonicTime(seconds: 1000)
        var sent = camera.addRemoteCandidate(ICECandidate(address: viewer, kind: .serverReflexive, localPreference: 65535, foundation: "v"),
                                             now: now)
        // Host pair first (higher priority), then the relay pair at the next pacing slot.
        now = now + .milliseconds(50)
        sent += camera.handleTimeout(now: now)
        let checks = sent.compactMap { action -> ([UInt8], TransportPath)? in
            if case let .send(bytes, path) = action { (bytes, path) } else { nil }
        }
        #expect(checks.map(\.1) == [.host(viewer), .relay(viewer)])
        let relayed = try STUNMessage(parsing: checks[1].0)
        let response = STUNMessage(messageClass: .successResponse, transactionID: relayed.transactionID,
                                   attributes: [.xorMappedAddress(Self.relayedAddress)])
            .serialized(integrityKey: Array(ICEParty.viewerCredentials.password.utf8), fingerprint: true)
        let wrongBase = camera.receive(response, on: .host(viewer), now: now + .milliseconds(10))
        #expect(wrongBase.allSatisfy { if case .rejected = $0 { true } else { false } })
        #expect(camera.pairState(on: .relay(viewer)) == .inProgress)
        let rightBase = camera.receive(response, on: .relay(viewer), now: now + .milliseconds(20))
        #expect(rightBase == [.checked(.relay(viewer))])
        #expect(camera.pairState(on: .relay(viewer)) == .succeeded)
        #expect(camera.pairState(on: .host(viewer)) == .inProgress)
    }

    /// Without a relayed candidate a check "via the relay" has no base to be answered on.
    @Test func aCheckViaARelayWeDoNotHaveIsRefused() throws {
        var camera = ICEParty.agent(.controlled, camera: true, host: ICEScenario.cameraHost, tieBreaker: 5, seed: 4)
        let viewer = TransportAddress(host: "198.51.100.9", port: 7000)!
        let check = STUNMessage(messageClass: .request, transactionID: Array(repeating: 7, count: 12), attributes: [
            .username("\(ICEParty.cameraCredentials.ufrag):\(ICEParty.viewerCredentials.ufrag)"),
            .priority(1), .iceControlling(9),
        ]).serialized(integrityKey: Array(ICEParty.cameraCredentials.password.utf8), fingerprint: true)
        let actions = camera.receive(check, on: .relay(viewer), now: MonotonicTime(seconds: 1000))
        #expect(actions.count == 1)
        #expect(actions.allSatisfy { if case .rejected = $0 { true } else { false } })
        #expect(camera.remoteCandidates.isEmpty)
    }
}
