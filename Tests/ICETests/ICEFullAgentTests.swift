import RTCBase
import STUN
import Testing
@testable import ICE

/// A camera (rtcam's full agent, controlled) and a viewer (the same agent, controlling) on the
/// simulated network: one LAN, or each behind its own NAT.
struct ICEScenario {
    static let cameraHost = TransportAddress(host: "10.0.0.2", port: 50000)!
    static let viewerHost = TransportAddress(host: "192.168.1.20", port: 61000)!
    static let lanViewerHost = TransportAddress(host: "10.0.0.3", port: 61000)!
    static let stunServer = TransportAddress(host: "192.0.2.10", port: 3478)!
    static let cameraPublicIP = "203.0.113.1"
    static let viewerPublicIP = "198.51.100.1"

    var net = ICENetwork()
    let camera: Int
    let viewer: Int
    var cameraSite: Int
    var viewerSite: Int

    /// `cameraNAT`/`viewerNAT` nil and `sameLAN`: both on one LAN. nil without `sameLAN`: that side
    /// is on the internet itself, at its host address.
    init(sameLAN: Bool = false, cameraNAT: SimulatedNAT? = nil, viewerNAT: SimulatedNAT? = nil,
         cameraHost: TransportAddress = ICEScenario.cameraHost, viewerHost: TransportAddress? = nil,
         cameraRole: ICERole = .controlled, viewerRole: ICERole = .controlling,
         cameraTieBreaker: UInt64 = 5, viewerTieBreaker: UInt64 = 9,
         cameraConfiguration: ICEFullAgent.Configuration = ICEFullAgent.Configuration(), seed: UInt64 = 1) {
        let viewerHost = viewerHost ?? (sameLAN ? Self.lanViewerHost : Self.viewerHost)
        cameraSite = net.addSite(SimulatedSite(nat: cameraNAT))
        viewerSite = sameLAN ? cameraSite : net.addSite(SimulatedSite(nat: viewerNAT))
        camera = net.addEndpoint(name: "camera", address: cameraHost, site: cameraSite,
                                 agent: ICEParty.agent(cameraRole, camera: true, host: cameraHost, tieBreaker: cameraTieBreaker, seed: seed,
                                                       configuration: cameraConfiguration))
        viewer = net.addEndpoint(name: "viewer", address: viewerHost, site: viewerSite,
                                 agent: ICEParty.agent(viewerRole, camera: false, host: viewerHost, tieBreaker: viewerTieBreaker, seed: seed + 100))
        // Gathering (RFC 8445 §5.1.1.2): what a STUN server tells each side behind a NAT.
        for (endpoint, host) in [(camera, cameraHost), (viewer, viewerHost)] where net.sites[net.endpoints[endpoint].site].nat != nil {
            let mapped = net.serverReflexiveAddress(of: endpoint, stunServer: Self.stunServer)
            net.endpoints[endpoint].agent.addLocalCandidate(ICEParty.serverReflexive(mapped, base: host))
        }
    }

    var cameraAgent: ICEFullAgent { net.endpoints[camera].agent }
    var viewerAgent: ICEFullAgent { net.endpoints[viewer].agent }

    /// Offer/answer with all candidates at once, then `duration` of simulated time.
    mutating func connect(within duration: Duration = .seconds(5)) {
        net.exchangeCandidates(camera, viewer)
        net.run(for: duration)
    }
}

@Suite struct ICEFullAgentConnectivityTests {
    @Test func hostToHostOnOneLAN() throws {
        var scenario = ICEScenario(sameLAN: true)
        let start = scenario.net.now
        scenario.connect()
        #expect(scenario.net.selections(of: scenario.camera) == [ICEScenario.lanViewerHost])
        #expect(scenario.net.selections(of: scenario.viewer) == [ICEScenario.cameraHost])
        let pair = try #require(scenario.cameraAgent.selectedPair)
        #expect(pair.local.kind == .host && pair.remote.kind == .host)
        // Check (20 ms), answer (20 ms), the viewer waits up to its nomination delay, nominating check
        // and answer (40 ms): well under half a second; the round trip is the network's.
        let selectedAt = try #require(scenario.net.firstSelection(of: scenario.camera))
        #expect(selectedAt - start < .milliseconds(400))
        #expect(pair.roundTripTime == .milliseconds(40))
        // The camera checks too (full ICE), with ICE-CONTROLLED and without USE-CANDIDATE.
        let checks = scenario.net.requestsSent(by: scenario.camera)
        #expect(checks.first?.1.iceControlled == 5 && checks.first?.1.hasUseCandidate == false)
        #expect(checks.first?.0 == start)
    }

    /// Both behind endpoint-independent-mapping NATs that filter by address and port: neither side's
    /// first check gets in until the other side has sent one out (hole punching, RFC 8445 §2.2).
    @Test func bothEndpointIndependentNATsPunchAHole() throws {
        var scenario = ICEScenario(
            cameraNAT: SimulatedNAT(publicIP: ICEScenario.cameraPublicIP, mapping: .endpointIndependent, filtering: .addressAndPortDependent),
            viewerNAT: SimulatedNAT(publicIP: ICEScenario.viewerPublicIP, mapping: .endpointIndependent, filtering: .addressAndPortDependent))
        let start = scenario.net.now
        scenario.connect()
        let cameraReflexive = try #require(scenario.cameraAgent.localCandidates.first { $0.kind == .serverReflexive })
        let viewerReflexive = try #require(scenario.viewerAgent.localCandidates.first { $0.kind == .serverReflexive })
        #expect(scenario.net.selections(of: scenario.camera) == [viewerReflexive.address])
        #expect(scenario.net.selections(of: scenario.viewer) == [cameraReflexive.address])
        let pair = try #require(scenario.cameraAgent.selectedPair)
        #expect(pair.local.kind == .serverReflexive && pair.remote.kind == .serverReflexive)
        #expect(pair.local.address.ip == TransportAddress.IP(parsing: ICEScenario.cameraPublicIP))
        // A first check was filtered: the hole opened because both sides checked.
        let filtered = scenario.net.sites[scenario.cameraSite].nat!.droppedInbound
            + scenario.net.sites[scenario.viewerSite].nat!.droppedInbound
        #expect(filtered >= 1)
        #expect(try #require(scenario.net.firstSelection(of: scenario.camera)) - start < .seconds(1))
        // Private host candidates of the other site have no route: those pairs never succeed.
        #expect(scenario.cameraAgent.pairState(remote: ICEScenario.viewerHost) == .inProgress)
    }

    /// The viewer behind a symmetric NAT (a new mapping per destination): its srflx candidate is
    /// useless, but its check reaches the camera from a new port, a peer-reflexive candidate
    /// (RFC 8445 §7.3.1.3), which the camera's triggered check confirms.
    @Test func symmetricViewerNATGivesPeerReflexivePair() throws {
        var scenario = ICEScenario(
            cameraNAT: SimulatedNAT(publicIP: ICEScenario.cameraPublicIP, mapping: .endpointIndependent, filtering: .endpointIndependent),
            viewerNAT: SimulatedNAT(publicIP: ICEScenario.viewerPublicIP, mapping: .addressAndPortDependent, filtering: .addressAndPortDependent))
        scenario.connect()
        let viewerReflexive = try #require(scenario.viewerAgent.localCandidates.first { $0.kind == .serverReflexive })
        let pair = try #require(scenario.cameraAgent.selectedPair)
        #expect(pair.remote.kind == .peerReflexive)
        #expect(pair.remote.address.ip == viewerReflexive.address.ip && pair.remote.address.port != viewerReflexive.address.port)
        #expect(pair.local.kind == .serverReflexive)
        // The viewer learns its own mapping toward the camera as a local peer-reflexive candidate (§7.2.5.3.1).
        let viewerPair = try #require(scenario.viewerAgent.selectedPair)
        #expect(viewerPair.local.kind == .peerReflexive && viewerPair.local.address == pair.remote.address)
        #expect(viewerPair.remote.kind == .serverReflexive)
    }

    /// Symmetric against a NAT that filters by address and port: no direct path exists (this needs
    /// a relay, TURN); nothing is selected and consent runs out after 30 s.
    @Test func symmetricAgainstPortRestrictedFindsNoPath() {
        var scenario = ICEScenario(
            cameraNAT: SimulatedNAT(publicIP: ICEScenario.cameraPublicIP, mapping: .endpointIndependent, filtering: .addressAndPortDependent),
            viewerNAT: SimulatedNAT(publicIP: ICEScenario.viewerPublicIP, mapping: .addressAndPortDependent, filtering: .addressAndPortDependent))
        let start = scenario.net.now
        scenario.connect(within: .seconds(40))
        #expect(scenario.net.selections(of: scenario.camera).isEmpty && scenario.net.selections(of: scenario.viewer).isEmpty)
        #expect(scenario.net.consentLosses(of: scenario.camera) == [start + .seconds(30)])
    }

    /// A camera on a public address behind a stateful firewall: the viewer's checks are dropped
    /// until the camera's own check went out (an ICE-lite camera could never be reached there).
    @Test func firewalledCameraIsReachedThroughItsOwnChecks() throws {
        var scenario = ICEScenario(cameraHost: TransportAddress(host: "203.0.113.5", port: 50000)!,
                                   viewerHost: TransportAddress(host: "198.51.100.7", port: 61000)!)
        scenario.net.sites[scenario.cameraSite].blocksUnsolicitedInbound = true
        // The viewer has the camera's candidates first (it got the answer), so its checks come
        // before the camera has sent anything.
        for candidate in scenario.cameraAgent.localCandidates {
            scenario.net.apply(scenario.net.endpoints[scenario.viewer].agent.addRemoteCandidate(candidate, now: scenario.net.now),
                               at: scenario.viewer)
        }
        scenario.net.run(for: .milliseconds(200))
        scenario.connect()
        #expect(scenario.net.sites[scenario.cameraSite].droppedUnsolicited >= 1)
        #expect(scenario.net.selections(of: scenario.camera) == [TransportAddress(host: "198.51.100.7", port: 61000)!])
    }

    /// 30 % of datagrams lost both ways, 40 seeds: retransmissions (same transaction, RFC 8489
    /// §6.2.1) and triggered checks find the pair every time; usually at once, at worst when a
    /// late retransmission gets through (measured: median 0.12 s, 38 of 40 within 5 s, worst 16.1 s).
    @Test func connectsDespiteLoss() throws {
        var times: [Duration] = []
        for seed in UInt64(1)...40 {
            var scenario = ICEScenario(sameLAN: true, seed: seed)
            scenario.net.lossRate = 0.3
            scenario.net.random = SeededRandom(seed: seed)
            let start = scenario.net.now
            scenario.connect(within: .seconds(25))
            #expect(scenario.net.selections(of: scenario.camera) == [ICEScenario.lanViewerHost], "seed \(seed)")
            #expect(scenario.net.droppedByLoss > 0)
            if let selected = scenario.net.firstSelection(of: scenario.camera) { times.append(selected - start) }
        }
        times.sort()
        #expect(times.count == 40)
        #expect(times[times.count / 2] < .milliseconds(300))
        #expect(times.filter { $0 < .seconds(5) }.count >= 36)
    }

    /// RFC 8445 §6.1.4.2 and §14.2: one new check per Ta (50 ms), the highest-priority Waiting pair
    /// first (§6.1.2.3); the pair that arrived alone went at once.
    @Test func checksArePacedInPriorityOrder() throws {
        var camera = ICEParty.agent(.controlled, camera: true, host: ICEScenario.cameraHost, tieBreaker: 5, seed: 8)
        let now = MonotonicTime(seconds: 1000)
        func candidate(_ last: UInt8, preference: UInt16, kind: ICECandidate.Kind = .host) -> ICECandidate {
            ICECandidate(address: TransportAddress(ip: .v4(198, 51, 100, last), port: 9), kind: kind,
                         localPreference: preference, foundation: "f\(last)")
        }
        var sent: [(MonotonicTime, TransportAddress)] = []
        func note(_ actions: [ICEAction], at time: MonotonicTime) {
            for case let .send(bytes, to) in actions where (try? STUNMessage(parsing: bytes))?.messageClass == .request {
                sent.append((time, to.remote))
            }
        }
        note(camera.addRemoteCandidate(candidate(1, preference: 10), now: now), at: now)
        for (last, preference, kind) in [(2, 20, ICECandidate.Kind.serverReflexive), (3, 30, .host), (4, 40, .host)] as [(UInt8, UInt16, ICECandidate.Kind)] {
            note(camera.addRemoteCandidate(candidate(last, preference: preference, kind: kind), now: now), at: now)
        }
        var time = now
        while let deadline = camera.nextDeadline, deadline < now + .milliseconds(400) {
            time = deadline
            note(camera.handleTimeout(now: time), at: time)
        }
        let firsts = sent.reduce(into: [(MonotonicTime, TransportAddress)]()) { list, entry in
            if !list.contains(where: { $0.1 == entry.1 }) { list.append(entry) }
        }
        #expect(firsts.map { ($0.0 - now).millisecondsDouble } == [0, 50, 100, 150])
        // Host 40, host 30, then the srflx one (type preference 100 < 126) whatever its local preference.
        #expect(firsts.map(\.1.ip) == [.v4(198, 51, 100, 1), .v4(198, 51, 100, 4), .v4(198, 51, 100, 3), .v4(198, 51, 100, 2)])
    }

    /// RFC 8489 §6.2.1 with RFC 8445 §14.3's RTO of 500 ms: a check to an unreachable candidate is
    /// sent 7 times at 0, 0.5, 1.5, 3.5, 7.5, 15.5 and 31.5 s, then fails 16 × RTO after the last.
    @Test func unansweredCheckIsRetransmittedThenFails() throws {
        var scenario = ICEScenario(
            cameraNAT: SimulatedNAT(publicIP: ICEScenario.cameraPublicIP, mapping: .endpointIndependent, filtering: .endpointIndependent),
            viewerNAT: SimulatedNAT(publicIP: ICEScenario.viewerPublicIP, mapping: .endpointIndependent, filtering: .endpointIndependent))
        scenario.connect(within: .seconds(60))
        let toPrivate = scenario.net.requestsSent(by: scenario.camera).filter { $0.2 == ICEScenario.viewerHost }
        #expect(Set(toPrivate.map(\.1.transactionID)).count == 1)
        let first = try #require(toPrivate.first?.0)
        #expect(toPrivate.map { ($0.0 - first).millisecondsDouble } == [0, 500, 1500, 3500, 7500, 15500, 31500])
        #expect(scenario.cameraAgent.pairState(remote: ICEScenario.viewerHost) == .failed)
        #expect(scenario.net.consentLosses(of: scenario.camera).isEmpty)
    }
}

@Suite struct ICEFullAgentRoleTests {
    /// RFC 8445 §7.3.1.1: both think they are controlled. The larger tie-breaker (the viewer's, 9)
    /// takes the controlling role when it sees ICE-CONTROLLED 5; the camera answers the viewer's
    /// ICE-CONTROLLED 9 with 487 and stays controlled. The viewer then nominates.
    @Test func bothControlledResolves() throws {
        var scenario = ICEScenario(sameLAN: true, viewerRole: .controlled)
        scenario.connect()
        #expect(scenario.viewerAgent.role == .controlling && scenario.cameraAgent.role == .controlled)
        #expect(scenario.net.selections(of: scenario.camera) == [ICEScenario.lanViewerHost])
        #expect(scenario.net.selections(of: scenario.viewer) == [ICEScenario.cameraHost])
        #expect(scenario.net.endpoints[scenario.camera].events.contains { if case let .rejected(reason) = $0.1 { reason.hasPrefix("487") } else { false } }
                || scenario.net.endpoints[scenario.viewer].events.contains { if case let .rejected(reason) = $0.1 { reason.hasPrefix("487") } else { false } })
    }

    /// Both claim to control: the smaller tie-breaker (the camera's) gives way (§7.3.1.1, §7.2.5.1).
    @Test func bothControllingResolves() throws {
        var scenario = ICEScenario(sameLAN: true, cameraRole: .controlling)
        scenario.connect()
        #expect(scenario.cameraAgent.role == .controlled && scenario.viewerAgent.role == .controlling)
        #expect(scenario.net.selections(of: scenario.camera) == [ICEScenario.lanViewerHost])
        #expect(scenario.net.selections(of: scenario.viewer) == [ICEScenario.cameraHost])
    }

    /// The same with the camera holding the larger tie-breaker: it is the one that controls.
    @Test func largerTieBreakerControls() throws {
        var scenario = ICEScenario(sameLAN: true, viewerRole: .controlled, cameraTieBreaker: 99)
        scenario.connect()
        #expect(scenario.cameraAgent.role == .controlling && scenario.viewerAgent.role == .controlled)
        #expect(scenario.net.selections(of: scenario.camera) == [ICEScenario.lanViewerHost])
        #expect(scenario.net.selections(of: scenario.viewer) == [ICEScenario.cameraHost])
    }
}

@Suite struct ICEFullAgentConsentTests {
    /// RFC 7675 both ways: the camera sends a consent check every 4-6 s on the selected pair and
    /// answers the viewer's; over five minutes nobody loses consent.
    @Test func consentHoldsBothWays() throws {
        var scenario = ICEScenario(sameLAN: true)
        scenario.connect()
        let selectedAt = try #require(scenario.net.firstSelection(of: scenario.camera))
        scenario.net.run(for: .seconds(300))
        #expect(scenario.net.consentLosses(of: scenario.camera).isEmpty && scenario.net.consentLosses(of: scenario.viewer).isEmpty)
        let consentChecks = scenario.net.requestsSent(by: scenario.camera).filter { $0.0 > selectedAt }.map(\.0)
        #expect(consentChecks.count >= 50 && consentChecks.count <= 76)
        for (earlier, later) in zip(consentChecks, consentChecks.dropFirst()) {
            #expect(later - earlier >= .seconds(4) && later - earlier <= .seconds(6))
        }
        // The viewer's consent checks all got answers from the camera.
        let viewerChecks = scenario.net.requestsSent(by: scenario.viewer).count
        let answers = scenario.net.endpoints[scenario.camera].sent.filter {
            (try? STUNMessage(parsing: $0.1))?.messageClass == .successResponse
        }.count
        #expect(answers >= viewerChecks - 1 && viewerChecks >= 50)
        #expect(scenario.cameraAgent.selectedPair?.roundTripTime == .milliseconds(40))
    }

    /// The viewer's direction breaks (its answers no longer arrive): the camera loses consent exactly
    /// 30 s after the last response it got, and reports it once.
    @Test func consentLostThirtySecondsAfterLastResponse() throws {
        var scenario = ICEScenario(sameLAN: true)
        scenario.connect()
        let cutOff = scenario.net.now + .seconds(20)
        let viewer = scenario.viewer
        scenario.net.dropRule = { now, from, _ in from == viewer && now >= cutOff }
        scenario.net.run(for: .seconds(90))
        let lastResponse = try #require(scenario.net.endpoints[scenario.camera].received.last {
            (try? STUNMessage(parsing: $0.1))?.messageClass == .successResponse
        }?.0)
        #expect(lastResponse < cutOff + .milliseconds(20) && lastResponse > cutOff - .seconds(7))
        #expect(scenario.net.consentLosses(of: scenario.camera) == [lastResponse + .seconds(30)])
        // After that it sends nothing at all.
        #expect(!scenario.net.endpoints[scenario.camera].sent.contains { $0.0 > lastResponse + .seconds(30) })
    }

    /// ICE restart (RFC 8445 §9): new credentials; checks with the old ones get 401; once both sides
    /// restarted and exchanged candidates again, the pair is selected again.
    @Test func restartSelectsAgain() throws {
        var scenario = ICEScenario(sameLAN: true)
        scenario.connect()
        #expect(scenario.net.selections(of: scenario.camera).count == 1)
        let newCamera = ICECredentials(ufrag: "cam2", password: "cameraPassword2CameraPas")
        let newViewer = ICECredentials(ufrag: "vie2", password: "viewerPassword2ViewerPas")
        scenario.net.endpoints[scenario.camera].agent.restart(local: newCamera, remote: newViewer, now: scenario.net.now)
        #expect(scenario.cameraAgent.selectedPair == nil)
        scenario.net.run(for: .seconds(7))  // the viewer's consent checks still use the old credentials
        #expect(scenario.net.endpoints[scenario.camera].events.contains { if case let .rejected(reason) = $0.1 { reason.hasPrefix("401") } else { false } })
        let restartAt = scenario.net.now
        scenario.net.endpoints[scenario.viewer].agent.restart(local: newViewer, remote: newCamera, now: restartAt)
        scenario.connect(within: .seconds(3))
        #expect(scenario.net.selections(of: scenario.camera) == [ICEScenario.lanViewerHost, ICEScenario.lanViewerHost])
        #expect(try #require(scenario.net.endpoints[scenario.camera].events.last { $0.1 == .selected(.host(ICEScenario.lanViewerHost)) }?.0)
                - restartAt < .milliseconds(400))
    }
}

@Suite struct ICEFullAgentSecurityTests {
    static let allowedViewer = TransportAddress(host: "10.0.0.3", port: 61000)!

    func cameraAllowingOnlyTheViewer() -> ICEFullAgent {
        var configuration = ICEFullAgent.Configuration()
        configuration.allowedRemoteIPs = [Self.allowedViewer.ip]
        return ICEParty.agent(.controlled, camera: true, host: ICEScenario.cameraHost, tieBreaker: 5, seed: 3, configuration: configuration)
    }

    /// A remote candidate outside the allowed IPs is never checked, and checks from there are not
    /// answered (so the stream cannot be pointed at a third host).
    @Test func candidatesOutsideAllowedIPsAreNeverChecked() {
        var camera = cameraAllowingOnlyTheViewer()
        let now = MonotonicTime(seconds: 1000)
        let foreign = TransportAddress(host: "192.0.2.99", port: 9)!
        let refused = camera.addRemoteCandidate(ICECandidate(address: foreign, kind: .host, localPreference: 1, foundation: "9"), now: now)
        #expect(refused.count == 1 && { if case .rejected = refused[0] { true } else { false } }())
        #expect(camera.remoteCandidates.isEmpty && camera.nextDeadline == now + .seconds(30))
        // A valid check from the foreign address: dropped, no answer, no peer-reflexive candidate.
        var viewer = ICEParty.agent(.controlling, camera: false, host: foreign, tieBreaker: 9, seed: 4)
        let sends = viewer.addRemoteCandidate(ICECandidate(address: ICEScenario.cameraHost, kind: .host, localPreference: 1, foundation: "1"),
                                              now: now)
        guard case let .send(check, _) = sends.first else { Issue.record("the viewer sent no check"); return }
        let answer = camera.receive(check, from: foreign, now: now)
        #expect(!answer.contains { if case .send = $0 { true } else { false } })
        #expect(camera.remoteCandidates.isEmpty)
    }

    /// A success response from elsewhere than the check went, or unsigned, or to an unknown
    /// transaction, does nothing: the pair stays in progress, nothing is checked or selected.
    @Test func forgedResponsesDoNothing() throws {
        var camera = cameraAllowingOnlyTheViewer()
        let now = MonotonicTime(seconds: 1000)
        let sends = camera.addRemoteCandidate(ICECandidate(address: Self.allowedViewer, kind: .host, localPreference: 1, foundation: "1"),
                                              now: now)
        guard case let .send(check, to) = sends.first else { Issue.record("the camera sent no check"); return }
        #expect(to == .host(Self.allowedViewer))
        let request = try STUNMessage(parsing: check)
        let key = Array(ICEParty.viewerCredentials.password.utf8)
        let signed = STUNMessage(messageClass: .successResponse, transactionID: request.transactionID,
                                 attributes: [.xorMappedAddress(ICEScenario.cameraHost)]).serialized(integrityKey: key, fingerprint: true)
        let unsigned = STUNMessage(messageClass: .successResponse, transactionID: request.transactionID,
                                   attributes: [.xorMappedAddress(ICEScenario.cameraHost)]).serialized(integrityKey: nil, fingerprint: true)
        let wrongKey = STUNMessage(messageClass: .successResponse, transactionID: request.transactionID,
                                   attributes: [.xorMappedAddress(ICEScenario.cameraHost)])
            .serialized(integrityKey: Array("somebodyElsesPassword!!".utf8), fingerprint: true)
        let otherTransaction = STUNMessage(messageClass: .successResponse, transactionID: Array(repeating: 7, count: 12),
                                           attributes: [.xorMappedAddress(ICEScenario.cameraHost)]).serialized(integrityKey: key, fingerprint: true)
        for (datagram, source) in [(signed, TransportAddress(host: "10.0.0.66", port: 61000)!), (unsigned, Self.allowedViewer),
                                   (wrongKey, Self.allowedViewer), (otherTransaction, Self.allowedViewer)] {
            let actions = camera.receive(datagram, from: source, now: now + .milliseconds(30))
            #expect(actions.allSatisfy { if case .rejected = $0 { true } else { false } })
        }
        #expect(camera.pairState(remote: Self.allowedViewer) == .inProgress)
        // The genuine answer from the right address makes the pair valid.
        let actions = camera.receive(signed, from: Self.allowedViewer, now: now + .milliseconds(40))
        #expect(actions == [.checked(.host(Self.allowedViewer))])
        #expect(camera.pairState(remote: Self.allowedViewer) == .succeeded)
    }

    /// The controlled camera selects only a pair that is nominated AND valid: a USE-CANDIDATE check
    /// alone (whose source could be spoofed) selects nothing until the camera's own check succeeded.
    @Test func nominationAloneSelectsNothing() throws {
        var camera = cameraAllowingOnlyTheViewer()
        var viewer = ICEParty.agent(.controlling, camera: false, host: Self.allowedViewer, tieBreaker: 9, seed: 4)
        let now = MonotonicTime(seconds: 1000)
        _ = viewer.addRemoteCandidate(ICECandidate(address: ICEScenario.cameraHost, kind: .host, localPreference: 1, foundation: "1"),
                                      now: now)
        let nominating = STUNMessage(messageClass: .request, transactionID: Array(repeating: 1, count: 12), attributes: [
            .username("cam1:view"), .priority(1), .iceControlling(9), .useCandidate,
        ]).serialized(integrityKey: Array(ICEParty.cameraCredentials.password.utf8), fingerprint: true)
        let actions = camera.receive(nominating, from: Self.allowedViewer, now: now)
        #expect(!actions.contains { if case .selected = $0 { true } else { false } })
        #expect(actions.contains(.checked(.host(Self.allowedViewer))))
        // Its triggered check back goes out in the same breath (nothing paced before it).
        let triggered = actions.compactMap { if case let .send(bytes, path) = $0, path == .host(Self.allowedViewer),
                                             (try? STUNMessage(parsing: bytes))?.messageClass == .request { bytes } else { nil } }
        #expect(triggered.count == 1)
        let answer = viewer.receive(try #require(triggered.first), from: ICEScenario.cameraHost, now: now + .milliseconds(10))
        let response = try #require(answer.compactMap { if case let .send(bytes, _) = $0 { bytes } else { nil } }.first)
        #expect(camera.receive(response, from: Self.allowedViewer, now: now + .milliseconds(20))
                == [.checked(.host(Self.allowedViewer)), .selected(.host(Self.allowedViewer))])
    }
}

@Suite struct ICECandidateTests {
    @Test func parsesHostServerReflexiveAndMulticastDNS() {
        let host = ICECandidate.parse(sdpValue: "1 1 udp 2122260223 192.168.1.20 61000 typ host generation 0")
        #expect(host == .candidate(ICECandidate(address: TransportAddress(host: "192.168.1.20", port: 61000)!, kind: .host,
                                                priority: 2_122_260_223, foundation: "1")))
        let reflexive = ICECandidate.parse(sdpValue: "candidate:2 1 UDP 1686052607 198.51.100.1 40000 typ srflx raddr 192.168.1.20 rport 61000")
        guard case let .candidate(candidate) = reflexive else { Issue.record("srflx not parsed"); return }
        #expect(candidate.kind == .serverReflexive && candidate.relatedAddress == TransportAddress(host: "192.168.1.20", port: 61000))
        #expect(ICECandidate.parse(sdpValue: candidate.sdpValue) == reflexive)
        #expect(candidate.sdpValue == "2 1 udp 1686052607 198.51.100.1 40000 typ srflx raddr 192.168.1.20 rport 61000")
        #expect(ICECandidate.parse(sdpValue: "3 1 udp 2122260223 0b1e0b4c-8c3e-4a8e-9d4b-2f1f1f1f1f1f.local 5000 typ host")
                == .multicastDNSName("0b1e0b4c-8c3e-4a8e-9d4b-2f1f1f1f1f1f.local", port: 5000, kind: .host, priority: 2_122_260_223,
                                     foundation: "3"))
        for unusable in ["4 1 tcp 1518280447 192.168.1.20 9000 typ host tcptype passive", "5 2 udp 1 192.168.1.20 61001 typ host",
                         "6 1 udp 1 192.168.1.20 61000 typ weird", "nonsense"] {
            if case .unusable = ICECandidate.parse(sdpValue: unusable) {} else { Issue.record("\(unusable) accepted") }
        }
    }

    /// RFC 8445 §5.1.2.1 and §6.1.2.3.
    @Test func priorities() {
        #expect(ICECandidate.priority(kind: .host, localPreference: 65535) == 2_130_706_431)
        #expect(ICECandidate.priority(kind: .serverReflexive, localPreference: 65535) == 1_694_498_815)
        let agent = ICEParty.agent(.controlled, camera: true, host: ICEScenario.cameraHost, tieBreaker: 1, seed: 1)
        let pair = ICEFullAgent.Pair(local: ICECandidate(address: ICEScenario.cameraHost, kind: .host, priority: 10, foundation: "1"),
                                     remote: ICECandidate(address: ICEScenario.viewerHost, kind: .host, priority: 20, foundation: "1"),
                                     state: .waiting)
        // Controlled: G is the remote (20), D ours (10): 2^32·10 + 2·20 + 1.
        #expect(agent.pairPriority(pair) == (1 << 32) * 10 + 40 + 1)
    }
}



@Suite struct ICEFullAgentRobustnessTests {
    /// 20,000 seeded garbage datagrams (random bytes, STUN-shaped headers, truncated and mutated
    /// real checks): nothing crashes, nothing is answered but well-formed requests, nothing selected.
    @Test func garbageChangesNothing() throws {
        var random = SeededRandom(seed: 42)
        var camera = ICEParty.agent(.controlled, camera: true, host: ICEScenario.cameraHost, tieBreaker: 5, seed: 9)
        var viewer = ICEParty.agent(.controlling, camera: false, host: ICEScenario.viewerHost, tieBreaker: 9, seed: 10)
        let now = MonotonicTime(seconds: 1000)
        let sends = viewer.addRemoteCandidate(ICECandidate(address: ICEScenario.cameraHost, kind: .host, localPreference: 1, foundation: "1"),
                                              now: now)
        guard case let .send(check, _)? = sends.first else { Issue.record("no check"); return }
        for round in 0..<20_000 {
            var datagram: [UInt8]
            switch round % 3 {
            case 0: datagram = random.bytes(Int(random.next() % 120))
            case 1: datagram = [0x01, UInt8(random.next() % 2 == 0 ? 0x01 : 0x11), 0, 0, 0x21, 0x12, 0xA4, 0x42] + random.bytes(12 + Int(random.next() % 60))
            default:
                // A byte changed in what MESSAGE-INTEGRITY covers (the last 8 bytes, FINGERPRINT, are
                // not: a check whose fingerprint became an unknown attribute is still authentic).
                datagram = Array(check.prefix(Int(random.next() % UInt64(check.count + 1))))
                let covered = min(datagram.count, check.count - 8)
                if covered > 0 { datagram[Int(random.next() % UInt64(covered))] ^= UInt8(truncatingIfNeeded: random.next() | 1) }
            }
            for action in camera.receive(datagram, from: ICEScenario.viewerHost, now: now) {
                if case .selected = action { Issue.record("garbage selected a pair") }
                if case .checked = action { Issue.record("garbage passed a check: \(datagram)") }
            }
        }
        #expect(camera.selectedPair == nil)
    }
}

/// Issue 19, IPv6: one dual-stack socket, host candidates of both families; a pair is only ever
/// formed between candidates of one family (RFC 8445 §6.1.2.2), with that family's host candidate.
@Suite struct ICEFullAgentDualStackTests {
    static let cameraV6 = TransportAddress(host: "2001:db8::1", port: 50000)!
    static let cameraV4 = TransportAddress(host: "10.0.0.2", port: 50000)!

    func camera(localCandidates: [ICECandidate]) -> ICEFullAgent {
        ICEFullAgent(role: .controlled, local: ICEParty.cameraCredentials, remote: ICEParty.viewerCredentials,
                     localCandidates: localCandidates, tieBreaker: 5, now: MonotonicTime(seconds: 1000), random: SeededRandom(seed: 3))
    }

    @Test func pairsOnlyWithinAFamily() throws {
        // Interleaved as rtcam orders them (RFC 8421): IPv6 first.
        var agent = camera(localCandidates: [
            ICECandidate(address: Self.cameraV6, kind: .host, localPreference: 65535, foundation: "1"),
            ICECandidate(address: Self.cameraV4, kind: .host, localPreference: 65534, foundation: "2"),
        ])
        let now = MonotonicTime(seconds: 1000)
        let viewerV4 = TransportAddress(host: "10.0.0.3", port: 61000)!, viewerV6 = TransportAddress(host: "2001:db8::2", port: 61001)!
        var checked: [TransportAddress: UInt32] = [:]   // destination → PRIORITY the check announced
        func note(_ actions: [ICEAction]) {
            for case let .send(bytes, to) in actions {
                if let request = try? STUNMessage(parsing: bytes), request.messageClass == .request { checked[to.remote] = request.priority }
            }
        }
        note(agent.addRemoteCandidate(ICECandidate(address: viewerV4, kind: .host, localPreference: 65535, foundation: "a"), now: now))
        note(agent.addRemoteCandidate(ICECandidate(address: viewerV6, kind: .host, localPreference: 65534, foundation: "b"), now: now))
        var time = now
        while let deadline = agent.nextDeadline, deadline < now + .milliseconds(200) {
            time = deadline
            note(agent.handleTimeout(now: time))
        }
        #expect(agent.pairs.count == 2)
        for pair in agent.pairs {
            #expect(pair.local.address.ip.isIPv6 == pair.remote.address.ip.isIPv6, "\(pair.local.address) ↔ \(pair.remote.address)")
        }
        #expect(agent.pairs.first { $0.remote.address == viewerV6 }?.local.address == Self.cameraV6)
        #expect(agent.pairs.first { $0.remote.address == viewerV4 }?.local.address == Self.cameraV4)
        // Each check announces the peer-reflexive priority of its own family's host candidate.
        #expect(checked[viewerV6] == ICECandidate.priority(kind: .peerReflexive, localPreference: 65535))
        #expect(checked[viewerV4] == ICECandidate.priority(kind: .peerReflexive, localPreference: 65534))
    }

    @Test func aCandidateOfAFamilyWithoutLocalCandidateIsRefused() {
        var agent = camera(localCandidates: [ICECandidate(address: Self.cameraV4, kind: .host, localPreference: 65535, foundation: "1")])
        let actions = agent.addRemoteCandidate(ICECandidate(address: TransportAddress(host: "2001:db8::2", port: 9)!, kind: .host,
                                                            localPreference: 65535, foundation: "a"),
                                               now: MonotonicTime(seconds: 1000))
        #expect(actions.contains { if case .rejected = $0 { return true } else { return false } })
        #expect(agent.pairs.isEmpty)
    }
}
