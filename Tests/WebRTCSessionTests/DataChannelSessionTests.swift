import DTLS
import DataChannel
import ICE
import RTCBase
import SCTP
import SDP
import Testing
import WebRTCSession
import WebRTCViewer

/// rtcam's PeerSession with data channels negotiated, against a test viewer whose SCTP and data
/// channels run over its DTLS (ViewerSession's application data), through the simulated network on
/// a virtual clock. The camera side echoes every message on every channel, as the hub does for
/// channels other than "rtcam".
final class DataChannelHarness {
    static let cameraAddress = TransportAddress(ip: .v4(127, 0, 0, 1), port: 8189)
    static let viewerAddress = TransportAddress(ip: .v4(127, 0, 0, 2), port: 50_000)

    var now = MonotonicTime(seconds: 1000)
    var network: SimulatedNetwork
    let camera: PeerSession
    let viewer: ViewerSession
    let negotiated: NegotiatedSession
    let media: MediaPacketizer
    /// The viewer's side of the data channels (made when its DTLS connects).
    var viewerChannels: DataChannelEndpoint?
    var echo = true
    private(set) var cameraEvents: [DataChannelEvent] = []
    private(set) var viewerEvents: [DataChannelEvent] = []
    private(set) var viewerMessages: [UInt16: [DataChannelMessage]] = [:]
    private(set) var applicationRecordsTooLarge = 0
    private var random: SeededRandom
    private var cameraDeadline: MonotonicTime?
    private var viewerDeadline: MonotonicTime?
    private var cameraOutputs: [PeerSessionOutput] = []
    private var viewerOutputs: [ViewerOutput] = []
    private var channelOutputs: [DataChannelOutput] = []

    /// Whether the viewer is the DTLS server (its offer says setup:passive): rtcam is then the DTLS
    /// client and starts SCTP itself.
    let viewerIsDTLSServer: Bool

    /// The viewer sends an INIT whatever its DTLS role (as browsers do): with rtcam the DTLS client,
    /// the INITs cross (RFC 9260 §5.2.1).
    let viewerAlwaysConnects: Bool

    init(seed: UInt64, dataChannel: Bool = true, lossRate: Double = 0, viewerIsDTLSServer: Bool = false,
         viewerAlwaysConnects: Bool = false) throws {
        self.viewerIsDTLSServer = viewerIsDTLSServer
        self.viewerAlwaysConnects = viewerAlwaysConnects
        random = SeededRandom(seed: seed)
        network = SimulatedNetwork(seed: seed &+ 1)
        network.lossRate = lossRate
        media = MediaPacketizer(random: &random)
        let cameraCertificate = try DTLSCertificate.generate(commonName: "rtcam", random: &random)
        let viewerCertificate = try DTLSCertificate.generate(commonName: "viewer", random: &random)
        let viewerICE = ICECredentials.random(ufragLength: 4, passwordLength: 24, using: &random)
        let cameraICE = ICECredentials.random(using: &random)
        var offerText = RecvOnlyOfferBuilder.offer(iceUfrag: viewerICE.ufrag, icePassword: viewerICE.password,
                                                   fingerprintSHA256: viewerCertificate.fingerprintSDP).serialized()
        if dataChannel {
            offerText = offerText.replacing("a=group:BUNDLE 0 1", with: "a=group:BUNDLE 0 1 2")
                + "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\n"
                + "a=sctp-port:5000\r\na=max-message-size:262144\r\n"
        }
        if viewerIsDTLSServer { offerText = offerText.replacingSetup(with: "passive") }
        let local = LocalTransport(
            iceUfrag: cameraICE.ufrag, icePassword: cameraICE.password, fingerprintSHA256: cameraCertificate.fingerprintSDP,
            candidates: [HostCandidate(address: Self.cameraAddress, foundation: "1", localPreference: 65_535)],
            videoSSRC: media.videoSSRC, videoRTXSSRC: media.videoRTXSSRC, audioSSRC: media.audioSSRC, cname: "rtcam", streamID: "rtcam")
        let (_, negotiated) = try WHEPAnswerer.answer(offer: try SessionDescription(parsing: offerText),
                                                      capabilities: LocalCapabilities(), local: local)
        self.negotiated = negotiated
        let configuration = PeerSessionConfiguration(negotiated: negotiated, localICE: cameraICE, certificate: cameraCertificate,
                                                     ntpNanosecondsAtMonotonicZero: 0, cname: "rtcam")
        camera = try PeerSession(configuration: configuration, now: now, random: &random)
        viewer = try ViewerSession(
            configuration: ViewerConfiguration(
                localICE: viewerICE, remoteICE: cameraICE, remoteAddress: Self.cameraAddress, certificate: viewerCertificate,
                remoteFingerprintSHA256: cameraCertificate.fingerprintSHA256, dtlsRole: viewerIsDTLSServer ? .server : .client,
                videoPayloadType: negotiated.video?.payloadType, videoRTXPayloadType: negotiated.video?.rtxPayloadType,
                audioPayloadType: negotiated.audio?.payloadType),
            now: now, random: &random)
    }

    func start() {
        viewer.start(now: now)
        pump()
    }

    func run(until end: MonotonicTime) {
        while true {
            let next = earliest(network.nextDelivery, cameraDeadline, viewerDeadline, viewerChannels?.nextDeadline)
            guard let next, next <= end else { break }
            now = max(now, next)
            for datagram in network.deliverDue(now: now) {
                if datagram.to == Self.cameraAddress {
                    camera.handle(.receive(datagram.bytes, on: .host(datagram.from), now: now), media: media)
                } else {
                    viewer.handle(datagram.bytes, from: datagram.from, now: now)
                }
            }
            if let deadline = cameraDeadline, deadline <= now { camera.handle(.timeout(now: now), media: media) }
            if let deadline = viewerDeadline, deadline <= now { viewer.handleTimeout(now: now) }
            if let deadline = viewerChannels?.nextDeadline, deadline <= now { viewerChannels!.handle(.timeout, now: now) }
            pump()
        }
        now = max(now, end)
    }

    @discardableResult
    func run(upTo limit: Duration, until predicate: () -> Bool) -> Bool {
        let end = now + limit
        while !predicate() {
            guard now < end else { return false }
            run(until: min(end, now + .milliseconds(5)))
        }
        return true
    }

    /// Sends from the viewer's side (the test's page).
    func viewerSend(_ message: DataChannelMessage, on channel: UInt16) throws {
        try viewerChannels!.send(message, on: channel, now: now)
        pump()
    }

    func viewerOpen(_ label: String, options: DataChannelOptions = DataChannelOptions()) throws -> UInt16 {
        let id = try viewerChannels!.open(label: label, options: options, now: now)
        pump()
        return id
    }

    func viewerClose(_ channel: UInt16) {
        viewerChannels!.close(channel, now: now)
        pump()
    }

    func pump() {
        var again = true
        while again {
            again = false
            cameraOutputs.removeAll(keepingCapacity: true)
            camera.drainOutputs(into: &cameraOutputs)
            for output in cameraOutputs {
                switch output {
                case let .transmit(bytes, to): network.send(bytes, from: Self.cameraAddress, to: to.remote, now: now)
                case let .event(.dataChannel(event)):
                    cameraEvents.append(event)
                    if echo, case let .message(channel, message) = event {
                        try? camera.sendDataChannelMessage(message, on: channel, now: now)
                    }
                case .event: break
                case let .timeout(deadline): cameraDeadline = deadline
                }
            }
            if camera.hasPendingOutputs { again = true }
            viewerOutputs.removeAll(keepingCapacity: true)
            viewer.drainOutputs(into: &viewerOutputs)
            for output in viewerOutputs {
                switch output {
                case let .transmit(bytes, to):
                    network.send(bytes, from: Self.viewerAddress, to: to, now: now)
                case .event(.connected):
                    var configuration = SCTPConfiguration(cookieAuthenticator: { Array($0.prefix(16)) })
                    configuration.maxPacketSize = 1100   // within one record (the harness counts any that is not)
                    viewerChannels = DataChannelEndpoint(role: viewerIsDTLSServer ? .server : .client,
                                                         configuration: configuration, random: &random)
                    // The DTLS client starts SCTP (RFC 8832 §6); a DTLS server waits for the INIT.
                    if !viewerIsDTLSServer || viewerAlwaysConnects { viewerChannels!.connect(now: now) }
                    again = true
                case let .event(.applicationData(packet)):
                    viewerChannels?.handle(.receive(packet), now: now)
                    again = true
                case .event: break
                case let .timeout(deadline): viewerDeadline = deadline
                }
            }
            if viewerChannels != nil {
                channelOutputs.removeAll(keepingCapacity: true)
                viewerChannels!.drainOutputs(into: &channelOutputs)
                for output in channelOutputs {
                    switch output {
                    case let .transmit(packet):
                        if !viewer.sendApplicationData(packet, now: now) { applicationRecordsTooLarge += 1 }
                        again = true
                    case let .event(event):
                        if case let .message(channel, message) = event {
                            viewerMessages[channel, default: []].append(message)
                        } else {
                            viewerEvents.append(event)
                        }
                    case .timeout: break
                    }
                }
            }
        }
    }

    var associationUp: Bool { viewerEvents.contains(.connected) && cameraEvents.contains(.connected) }
}

@Suite("Data channels in a viewer's session (RFC 8831 over DTLS, RFC 8261)")
struct DataChannelSessionTests {
    static func connected(seed: UInt64, lossRate: Double = 0) throws -> DataChannelHarness {
        let harness = try DataChannelHarness(seed: seed, lossRate: lossRate)
        harness.start()
        #expect(harness.run(upTo: .seconds(20)) { harness.associationUp })
        return harness
    }

    @Test func withoutDataChannelTheDTLSEndpointIsFreedAsBefore() throws {
        let harness = try DataChannelHarness(seed: 1, dataChannel: false)
        #expect(harness.negotiated.dataChannel == nil && !harness.camera.hasDataChannels)
        harness.start()
        #expect(harness.run(upTo: .seconds(10)) { harness.camera.state == .connected })
        // The server frees it once the peer proves it has the keys (authenticated SRTCP: receiver reports).
        #expect(harness.run(upTo: .seconds(5)) { !harness.camera.holdsDTLSEndpoint })
        #expect(harness.camera.sctpStatistics == nil)
    }

    @Test func withDataChannelTheEndpointStaysAndSCTPComesUp() throws {
        let harness = try Self.connected(seed: 2)
        #expect(harness.camera.hasDataChannels && harness.negotiated.dataChannel?.mid == "2")
        harness.run(until: harness.now + .seconds(5))   // receiver reports would have retired it by now
        #expect(harness.camera.holdsDTLSEndpoint)
        #expect(harness.applicationRecordsTooLarge == 0)
    }

    @Test(arguments: [false, true])
    func rtcamAsTheDTLSClientStartsSCTP(crossingINITs: Bool) throws {
        let harness = try DataChannelHarness(seed: 7, viewerIsDTLSServer: true, viewerAlwaysConnects: crossingINITs)
        #expect(harness.negotiated.localDTLSRole == .client)
        harness.start()
        #expect(harness.run(upTo: .seconds(20)) { harness.associationUp })
        let channel = try harness.viewerOpen("odd")
        #expect(channel % 2 == 1, "the DTLS server's channels have odd ids (RFC 8832 §6)")
        try harness.viewerSend(.text("from the DTLS server"), on: channel)
        #expect(harness.run(upTo: .seconds(5)) { harness.viewerMessages[channel] == [.text("from the DTLS server")] })
        let own = try harness.camera.openDataChannel(label: "even", now: harness.now)
        #expect(own % 2 == 0)
    }

    @Test func messagesOfEverySizeEchoOrderedAndUnordered() throws {
        let harness = try Self.connected(seed: 3)
        let ordered = try harness.viewerOpen("echo")
        let unordered = try harness.viewerOpen("loose", options: DataChannelOptions(ordered: false))
        #expect(harness.run(upTo: .seconds(5)) { harness.cameraEvents.filter { if case .opened = $0 { true } else { false } }.count == 2 })
        let sizes = [1, 2, 100, 1_099, 1_100, 1_101, 4_096, 65_535, 65_536, 100_000, 262_144]
        var random = SeededRandom(seed: 33)
        var sent: [DataChannelMessage] = []
        for size in sizes {
            let message = DataChannelMessage.binary(random.bytes(size))
            sent.append(message)
            try harness.viewerSend(message, on: ordered)
            try harness.viewerSend(message, on: unordered)
        }
        try harness.viewerSend(.text("héllo"), on: ordered)
        try harness.viewerSend(.text(""), on: ordered)
        #expect(harness.run(upTo: .seconds(60)) { (harness.viewerMessages[ordered]?.count ?? 0) == sizes.count + 2
                && (harness.viewerMessages[unordered]?.count ?? 0) == sizes.count })
        // Compared into Bools first: a failure would otherwise print every byte of 256 KiB messages.
        let orderedSame = harness.viewerMessages[ordered] == sent + [.text("héllo"), .text("")]
        let unorderedSame = Set(harness.viewerMessages[unordered] ?? []) == Set(sent)
        #expect(orderedSame, "ordered echoes: \(harness.viewerMessages[ordered]?.count ?? 0) of \(sent.count + 2)")
        #expect(unorderedSame, "unordered echoes: \(harness.viewerMessages[unordered]?.count ?? 0) of \(sent.count)")
        #expect(harness.applicationRecordsTooLarge == 0 && harness.camera.sctpPacketsNotSent == 0)
    }

    @Test func twoThousandMessagesEachWayNoneLostOrReordered() throws {
        let harness = try Self.connected(seed: 4)
        let channel = try harness.viewerOpen("bulk")
        // Camera → viewer: the camera opens its own channel and sends; the viewer does not echo.
        let cameraChannel = try harness.camera.openDataChannel(label: "camera-bulk", now: harness.now)
        #expect(harness.run(upTo: .seconds(5)) { harness.viewerEvents.contains { if case .opened = $0 { true } else { false } } })
        for index in 0..<2_000 {
            try harness.viewerSend(.text("v\(index)"), on: channel)
            try harness.camera.sendDataChannelMessage(.text("c\(index)"), on: cameraChannel, now: harness.now)
            harness.pump()
        }
        #expect(harness.run(upTo: .seconds(60)) { (harness.viewerMessages[channel]?.count ?? 0) == 2_000
                && (harness.viewerMessages[cameraChannel]?.count ?? 0) == 2_000 })
        let fromViewer = harness.viewerMessages[channel] == (0..<2_000).map { .text("v\($0)") }
        let fromCamera = harness.viewerMessages[cameraChannel] == (0..<2_000).map { .text("c\($0)") }
        #expect(fromViewer && fromCamera)
    }

    @Test func tenPercentLossReliableStaysWholePartialReliabilityGivesUp() throws {
        let harness = try Self.connected(seed: 5, lossRate: 0.10)
        let reliable = try harness.viewerOpen("reliable")
        let partial = try harness.viewerOpen("partial", options: DataChannelOptions(ordered: false, reliability: .maxRetransmits(0)))
        let lifetime = try harness.viewerOpen("lifetime", options: DataChannelOptions(ordered: true,
                                                                                      reliability: .maxPacketLifeTime(milliseconds: 30)))
        #expect(harness.run(upTo: .seconds(20)) { harness.cameraEvents.filter { if case .opened = $0 { true } else { false } }.count == 3 })
        for index in 0..<300 {
            try harness.viewerSend(.text("r\(index)"), on: reliable)
            try harness.viewerSend(.binary(Array(repeating: UInt8(index & 0xFF), count: 2_000)), on: partial)
            harness.run(until: harness.now + .milliseconds(10))
        }
        #expect(harness.run(upTo: .seconds(120)) { (harness.viewerMessages[reliable]?.count ?? 0) == 300 })
        let reliableInOrder = harness.viewerMessages[reliable] == (0..<300).map { .text("r\($0)") }
        #expect(reliableInOrder)
        harness.run(until: harness.now + .seconds(10))
        // Unreliable: each way loses about 10 % of the (two-packet) messages, and nothing stalls.
        let echoed = harness.viewerMessages[partial]?.count ?? 0
        #expect(echoed > 150 && echoed < 300, "\(echoed) of 300 unreliable messages came back")
        #expect((harness.camera.sctpStatistics?.forwardTSNsReceived ?? 0) > 0)
        // maxPacketLifeTime 30 ms, sent alone (a queue behind a congested window would outlive it
        // before the first transmission): a lost one is given up (RTO and fast retransmit both come
        // later), the rest arrive in order (an ordered stream skips what FORWARD TSN gave up, RFC 3758 §3.6).
        let forwardBefore = harness.camera.sctpStatistics?.forwardTSNsReceived ?? 0
        for index in 0..<300 {
            try harness.viewerSend(.text("l\(index)"), on: lifetime)
            harness.run(until: harness.now + .milliseconds(10))
        }
        harness.run(until: harness.now + .seconds(10))
        #expect((harness.camera.sctpStatistics?.forwardTSNsReceived ?? 0) > forwardBefore)
        let timed = (harness.viewerMessages[lifetime] ?? []).compactMap { message -> Int? in
            if case let .text(text) = message { return Int(text.dropFirst()) } else { return nil }
        }
        let atCamera = harness.cameraEvents.filter { if case .message(lifetime, _) = $0 { true } else { false } }.count
        #expect(timed.count > 150 && timed.count < 300, "\(timed.count) of 300 lifetime-limited messages came back (\(atCamera) reached rtcam); viewer SCTP \(harness.viewerChannels!.association.statistics), camera \(harness.camera.sctpStatistics!)")
        #expect(timed == timed.sorted())
    }

    @Test func closingByStreamResetClosesBothSides() throws {
        let harness = try Self.connected(seed: 6)
        let channel = try harness.viewerOpen("to-close")
        try harness.viewerSend(.text("before"), on: channel)
        #expect(harness.run(upTo: .seconds(5)) { harness.viewerMessages[channel] == [.text("before")] })
        harness.viewerClose(channel)
        #expect(harness.run(upTo: .seconds(5)) { harness.cameraEvents.contains(.closed(channel)) && harness.viewerEvents.contains(.closed(channel)) })
        #expect(throws: DataChannelError.unknownChannel(channel)) {
            try harness.camera.sendDataChannelMessage(.text("after"), on: channel, now: harness.now)
        }
        #expect(harness.camera.dataChannelInfos.isEmpty)
        // The id is free again: a new channel on it works.
        let again = try harness.viewerOpen("again")
        #expect(again == channel)
        try harness.viewerSend(.text("second life"), on: again)
        #expect(harness.run(upTo: .seconds(5)) { harness.viewerMessages[channel]?.last == .text("second life") })
    }
}
