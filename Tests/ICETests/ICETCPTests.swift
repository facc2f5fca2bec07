import RTCBase
import STUN
import Testing
@testable import ICE

/// ICE-TCP (RFC 6544) between rtcam's agent (controlled, a passive TCP candidate on its media port)
/// and a viewer's (controlling, an active TCP candidate at port 9, as browsers announce it), on a
/// virtual clock. UDP between them works or is dropped; TCP connections are opened by the viewer's
/// first send to the camera's passive address, from a fresh ephemeral port, and every datagram on
/// them is framed and deframed (RFC 4571) in small pieces.
struct ICETCPNetwork {
    static let cameraAddress = TransportAddress(host: "10.0.0.2", port: 8189)!
    static let viewerUDP = TransportAddress(host: "10.0.0.3", port: 61000)!
    static let viewerActive = TransportAddress(host: "10.0.0.3", port: 9)!

    enum Side { case camera, viewer }

    struct Delivery {
        var at: MonotonicTime
        var to: Side
        var datagram: [UInt8]
        var path: TransportPath
        var order: Int
    }

    /// One TCP connection: the viewer's ephemeral port, and each direction's byte stream deframed.
    struct Connection {
        var viewerPort: UInt16
        var toCamera = LengthPrefixedDeframer()
        var toViewer = LengthPrefixedDeframer()
        var open = true
    }

    var camera: ICEFullAgent
    var viewer: ICEFullAgent
    var now = MonotonicTime(seconds: 1000)
    var udpBlocked: Bool
    var latency: Duration = .milliseconds(10)
    private var queue: [Delivery] = []
    private var order = 0
    var connections: [Connection] = []
    private var nextEphemeralPort: UInt16 = 40000
    /// What each side reported, in order.
    var cameraSelections: [(MonotonicTime, TransportPath)] = []
    var viewerSelections: [(MonotonicTime, TransportPath)] = []
    var consentLost: [Side] = []
    /// STUN requests each side sent, by path.
    var cameraRequests: [TransportPath] = []
    var viewerRequests: [TransportPath] = []
    var udpDropped = 0
    /// The camera sent on a TCP path with no open connection (must never happen).
    var cameraSendsWithoutConnection = 0

    init(udpBlocked: Bool, cameraHasTCP: Bool = true, seed: UInt64 = 7) {
        self.udpBlocked = udpBlocked
        var cameraCandidates = [ICECandidate(address: Self.cameraAddress, kind: .host, localPreference: 65535, foundation: "1")]
        if cameraHasTCP {
            cameraCandidates.append(.tcp(address: Self.cameraAddress, tcpType: .passive, foundation: "2"))
        }
        camera = ICEFullAgent(role: .controlled, local: ICEParty.cameraCredentials, remote: ICEParty.viewerCredentials,
                              localCandidates: cameraCandidates, tieBreaker: 5, now: now, random: SeededRandom(seed: seed))
        viewer = ICEFullAgent(role: .controlling, local: ICEParty.viewerCredentials, remote: ICEParty.cameraCredentials,
                              localCandidates: [ICECandidate(address: Self.viewerUDP, kind: .host, localPreference: 65535, foundation: "1"),
                                                .tcp(address: Self.viewerActive, tcpType: .active, foundation: "3")],
                              tieBreaker: 9, now: now, random: SeededRandom(seed: seed + 100))
    }

    /// Offer/answer: the camera parses the viewer's candidates from their SDP text (as from an
    /// offer); the viewer is given the camera's (our parser refuses passive ones: it is rtcam's).
    mutating func exchangeCandidates() {
        for candidate in viewer.localCandidates {
            guard case let .candidate(parsed) = ICECandidate.parse(sdpValue: candidate.sdpValue) else {
                Issue.record("viewer candidate \(candidate.sdpValue) did not parse")
                continue
            }
            perform(camera.addRemoteCandidate(parsed, now: now), by: .camera)
        }
        for candidate in camera.localCandidates {
            perform(viewer.addRemoteCandidate(candidate, now: now), by: .viewer)
        }
    }

    mutating func run(for duration: Duration) {
        let end = now + duration
        while true {
            let next = [queue.map(\.at).min(), camera.nextDeadline, viewer.nextDeadline].compactMap { $0 }.min()
            guard let next, next <= end else { break }
            now = max(now, next)
            if let index = queue.indices.filter({ queue[$0].at <= now }).min(by: { queue[$0].order < queue[$1].order }) {
                let delivery = queue.remove(at: index)
                switch delivery.to {
                case .camera: perform(camera.receive(delivery.datagram, on: delivery.path, now: now), by: .camera)
                case .viewer: perform(viewer.receive(delivery.datagram, on: delivery.path, now: now), by: .viewer)
                }
                continue
            }
            if let deadline = camera.nextDeadline, deadline <= now { perform(camera.handleTimeout(now: now), by: .camera) }
            if let deadline = viewer.nextDeadline, deadline <= now { perform(viewer.handleTimeout(now: now), by: .viewer) }
        }
        now = end
    }

    /// The viewer closes the connection from its ephemeral `port`.
    mutating func closeConnection(port: UInt16) {
        guard let index = connections.firstIndex(where: { $0.viewerPort == port && $0.open }) else { return }
        connections[index].open = false
        camera.tcpConnectionClosed(remote: TransportAddress(ip: Self.viewerActive.ip, port: port))
        viewer.tcpConnectionClosed(remote: Self.cameraAddress)
    }

    private mutating func perform(_ actions: [ICEAction], by side: Side) {
        for action in actions {
            switch action {
            case let .send(datagram, path):
                if datagram[0] & 0x01 == 0, datagram[1] & 0x10 == 0 {
                    if side == .camera { cameraRequests.append(path) } else { viewerRequests.append(path) }
                }
                send(datagram, on: path, by: side)
            case let .selected(path):
                if side == .camera { cameraSelections.append((now, path)) } else { viewerSelections.append((now, path)) }
            case .consentLost:
                consentLost.append(side)
            case .checked, .rejected:
                break
            }
        }
    }

    private mutating func send(_ datagram: [UInt8], on path: TransportPath, by side: Side) {
        switch path.base {
        case .host:
            guard !udpBlocked else { udpDropped += 1; return }
            let source = side == .camera ? Self.cameraAddress : Self.viewerUDP
            enqueue(datagram, to: side == .camera ? .viewer : .camera, on: .host(source))
        case .relay:
            Issue.record("nothing here is relayed")
        case .tcp:
            let framed = LengthPrefixedFraming.frame(datagram)!
            if side == .viewer {
                #expect(path.remote == Self.cameraAddress)
                // The viewer's connection to the passive candidate: opened by its first send.
                if !connections.contains(where: \.open) {
                    connections.append(Connection(viewerPort: nextEphemeralPort))
                    nextEphemeralPort += 1
                }
                let index = connections.lastIndex(where: \.open)!
                let source = TransportAddress(ip: Self.viewerActive.ip, port: connections[index].viewerPort)
                for frame in deliverInPieces(framed, into: &connections[index].toCamera) {
                    enqueue(frame, to: .camera, on: .tcp(source))
                }
            } else {
                guard path.remote.ip == Self.viewerActive.ip,
                      let index = connections.firstIndex(where: { $0.open && $0.viewerPort == path.remote.port }) else {
                    cameraSendsWithoutConnection += 1
                    return
                }
                for frame in deliverInPieces(framed, into: &connections[index].toViewer) {
                    enqueue(frame, to: .viewer, on: .tcp(Self.cameraAddress))
                }
            }
        }
    }

    /// The stream's bytes through the receiver's deframer, 7 bytes a read.
    private func deliverInPieces(_ bytes: [UInt8], into deframer: inout LengthPrefixedDeframer) -> [[UInt8]] {
        var frames: [[UInt8]] = []
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + 7)
            frames += (try? deframer.append(bytes[offset..<end])) ?? []
            offset = end
        }
        return frames
    }

    private mutating func enqueue(_ datagram: [UInt8], to side: Side, on path: TransportPath) {
        queue.append(Delivery(at: now + latency, to: side, datagram: datagram, path: path, order: order))
        order += 1
    }
}

@Suite struct ICETCPTests {
    /// RFC 6544 §4.5 candidate lines both ways, and the priorities that make UDP win.
    @Test func candidateLinesAndPriorities() throws {
        let passive = ICECandidate.tcp(address: ICETCPNetwork.cameraAddress, tcpType: .passive, foundation: "2")
        #expect(passive.sdpValue == "2 1 tcp \(passive.priority) 10.0.0.2 8189 typ host tcptype passive")
        #expect(passive.base == .tcp && passive.isTCP)
        // (2^24)·90 + (2^8)·((2^13)·4 + 8191) + 255
        #expect(passive.priority == 90 << 24 + (4 << 13 + 8191) << 8 + 255)
        let udpHost = ICECandidate(address: ICETCPNetwork.cameraAddress, kind: .host, localPreference: 0, foundation: "1")
        let udpReflexive = ICECandidate(address: ICETCPNetwork.cameraAddress, kind: .serverReflexive, localPreference: 0, foundation: "1")
        let relayed = ICECandidate(address: ICETCPNetwork.cameraAddress, kind: .relayed, localPreference: 65535, foundation: "1")
        #expect(passive.priority < udpReflexive.priority && passive.priority < udpHost.priority)
        #expect(passive.priority > relayed.priority)

        // A browser's active candidate (port 9) is usable; its extension attributes are passed over.
        let chromium = "candidate:3 1 tcp 1518280447 192.168.50.7 9 typ host tcptype active generation 0 ufrag abcd network-id 1"
        guard case let .candidate(active) = ICECandidate.parse(sdpValue: chromium) else {
            Issue.record("active candidate refused"); return
        }
        #expect(active.tcpType == .active && active.address.port == 9 && active.priority == 1_518_280_447)
        #expect(active.sdpValue == "3 1 tcp 1518280447 192.168.50.7 9 typ host tcptype active")
        // rtcam cannot connect: passive and simultaneous-open candidates, and TCP without a type, are not for it.
        for line in ["1 1 tcp 1518280447 192.168.50.7 9000 typ host tcptype passive",
                     "1 1 tcp 1518280447 192.168.50.7 9000 typ host tcptype so",
                     "1 1 tcp 1518280447 192.168.50.7 9000 typ host"] {
            guard case .unusable = ICECandidate.parse(sdpValue: line) else { Issue.record("\(line) accepted"); continue }
        }
        // UDP lines are as before.
        guard case let .candidate(udp) = ICECandidate.parse(sdpValue: "1 1 udp 2122260223 192.168.50.7 51000 typ host") else {
            Issue.record("UDP refused"); return
        }
        #expect(udp.tcpType == nil && udp.base == .host)
    }

    /// UDP dropped both ways: the viewer connects to the passive candidate, the camera answers on
    /// that connection and checks back on it, the viewer nominates it, both select it; consent holds
    /// over it for a minute.
    @Test func udpBlockedSelectsTheTCPPair() throws {
        var net = ICETCPNetwork(udpBlocked: true)
        let start = net.now
        net.exchangeCandidates()
        // The active candidate is recorded, with no pair: the camera never checks port 9.
        #expect(net.camera.remoteCandidates.contains { $0.tcpType == .active && $0.address == ICETCPNetwork.viewerActive })
        #expect(net.camera.pairState(on: .tcp(ICETCPNetwork.viewerActive)) == nil)
        net.run(for: .seconds(3))
        #expect(net.connections.count == 1)
        let port = try #require(net.connections.first?.viewerPort)
        let viewerConnection = TransportAddress(ip: ICETCPNetwork.viewerActive.ip, port: port)
        #expect(net.cameraSelections.map(\.1) == [.tcp(viewerConnection)])
        #expect(net.viewerSelections.map(\.1) == [.tcp(ICETCPNetwork.cameraAddress)])
        let (selectedAt, _) = try #require(net.cameraSelections.first)
        #expect(selectedAt - start < .milliseconds(800))
        let pair = try #require(net.camera.selectedPair)
        #expect(pair.remote.kind == .peerReflexive && pair.remote.tcpType == .active)
        #expect(pair.local.tcpType == .passive && pair.local.address == ICETCPNetwork.cameraAddress)
        // The camera's triggered check went back over that same connection, nothing to port 9.
        #expect(net.cameraRequests.contains(.tcp(viewerConnection)))
        #expect(!net.cameraRequests.contains { $0.base == .tcp && $0.remote.port == 9 })
        #expect(net.cameraSendsWithoutConnection == 0)
        #expect(net.udpDropped > 0)

        // Consent (RFC 7675) over the connection for a minute: kept, checks every ~5 s.
        let before = net.cameraRequests.filter { $0 == .tcp(viewerConnection) }.count
        net.run(for: .seconds(60))
        #expect(net.consentLost.isEmpty)
        #expect(net.camera.selectedPath == .tcp(viewerConnection))
        let consentChecks = net.cameraRequests.filter { $0 == .tcp(viewerConnection) }.count - before
        #expect((9...15).contains(consentChecks))
        #expect(net.cameraSelections.count == 1 && net.connections.count == 1)
        // Checks over TCP are never retransmitted: each request the camera sent on it is a new one.
        #expect(net.cameraSendsWithoutConnection == 0)
    }

    /// UDP working: the UDP pair is selected on both sides and stays; the TCP pair never is.
    @Test func udpWorkingNeverSelectsTheTCPPair() {
        var net = ICETCPNetwork(udpBlocked: false)
        net.exchangeCandidates()
        net.run(for: .seconds(45))
        #expect(net.cameraSelections.map(\.1) == [.host(ICETCPNetwork.viewerUDP)])
        #expect(net.viewerSelections.map(\.1) == [.host(ICETCPNetwork.cameraAddress)])
        #expect(net.camera.selectedPath?.base == .host && net.viewer.selectedPath?.base == .host)
        #expect(net.consentLost.isEmpty)
        #expect(net.cameraSelections.allSatisfy { $0.1.base != .tcp })
    }

    /// The connection closes: the camera's pair on it fails. The viewer's next check (its consent
    /// check) opens a new connection from a new port; the camera answers and checks back on it, the
    /// viewer nominates it again, and media moves there. Nothing is sent on the closed one.
    @Test func aClosedConnectionFailsItsPairAndANewOneTakesOver() throws {
        var net = ICETCPNetwork(udpBlocked: true)
        net.exchangeCandidates()
        net.run(for: .seconds(2))
        let port = try #require(net.connections.first?.viewerPort)
        let path = TransportPath.tcp(TransportAddress(ip: ICETCPNetwork.viewerActive.ip, port: port))
        #expect(net.camera.pairState(on: path) == .succeeded)
        net.closeConnection(port: port)
        #expect(net.camera.pairState(on: path) == .failed)
        let closedAt = net.now
        net.run(for: .seconds(40))
        #expect(net.consentLost.isEmpty)
        #expect(net.connections.map(\.viewerPort) == [port, port + 1])
        let newPath = TransportPath.tcp(TransportAddress(ip: ICETCPNetwork.viewerActive.ip, port: port + 1))
        #expect(net.cameraSelections.map(\.1) == [path, newPath])
        // Within a consent interval (5 s ± 20 %) and a round trip.
        let (reselectedAt, _) = try #require(net.cameraSelections.last)
        #expect(reselectedAt - closedAt < .milliseconds(6100))
        #expect(net.camera.pairState(on: path) == .failed)
    }

    /// A camera without a TCP candidate refuses checks that come over TCP, and records no active
    /// candidate (nothing to pair it with).
    @Test func noPassiveCandidateNoTCP() {
        var net = ICETCPNetwork(udpBlocked: true, cameraHasTCP: false)
        net.exchangeCandidates()
        #expect(!net.camera.remoteCandidates.contains { $0.isTCP })
        net.run(for: .seconds(5))
        #expect(net.cameraSelections.isEmpty)
        #expect(net.cameraRequests.allSatisfy { $0.base == .host })
        let check = STUNMessage(messageClass: .request, transactionID: Array(repeating: 3, count: 12),
                                attributes: [.username("cam1:view"), .priority(1), .iceControlling(9)])
            .serialized(integrityKey: Array(ICEParty.cameraCredentials.password.utf8), fingerprint: true)
        let actions = net.camera.receive(check, on: .tcp(TransportAddress(host: "10.0.0.3", port: 40000)!), now: net.now)
        #expect(actions.count == 1)
        guard case .rejected = actions.first else { Issue.record("answered: \(actions)"); return }
    }
}
