import DTLS
import ICE
import RTCBase
import SDP
import WebRTCSession
import WebRTCViewer

/// rtcam's PeerSession and a test ViewerSession (built from the same STUN, DTLS, SRTP and RTP pieces)
/// joined by a SimulatedNetwork on a virtual clock, negotiated through real SDP as WHEP would.
final class TwoPeerHarness {
    static let cameraAddress = TransportAddress(ip: .v4(127, 0, 0, 1), port: 8189)
    static let viewerAddress = TransportAddress(ip: .v4(127, 0, 0, 2), port: 50_000)

    var now = MonotonicTime(seconds: 1000)
    var network: SimulatedNetwork
    var fanout: MediaPacketizer
    let camera: PeerSession
    let viewer: ViewerSession
    let negotiated: NegotiatedSession
    var viewerAddress = TwoPeerHarness.viewerAddress
    /// When false the viewer stops answering timers and sending (a viewer that vanished).
    var viewerAlive = true

    private(set) var cameraEvents: [(MonotonicTime, PeerSessionEvent)] = []
    private(set) var viewerEvents: [(MonotonicTime, ViewerEvent)] = []
    private(set) var sentAccessUnits: [[UInt8]] = []
    /// When each of `sentAccessUnits` was packetized, and when each of `receivedAccessUnits` came out
    /// of the viewer's depacketizer.
    private(set) var sentAccessUnitTimes: [MonotonicTime] = []
    private(set) var receivedAccessUnitTimes: [MonotonicTime] = []
    /// Multiplies the size of every non-IDR slice (1: ~0.5 Mb/s of video; 3: ~1.5 Mb/s).
    var videoFrameScale = 1
    private(set) var receivedAccessUnits: [[UInt8]] = []
    private(set) var receivedAudioFrames = 0
    private var random: SeededRandom
    private var nextVideoFrame: MonotonicTime?
    private var nextAudioFrame: MonotonicTime?
    private var frameIndex = 0
    /// Like the daemon's hub: a connecting viewer or a PLI/FIR makes the next frame a keyframe.
    private var keyframeRequested = false
    /// Issue 24: each picture is also sent as a reduced layer (smaller access units, its own
    /// keyframes, asked for when the camera's session wants that layer), and every access unit
    /// packetized is recorded with its layer and its index in that layer.
    var sendsReducedLayer = false
    var reducedKeyframeRequested = false
    private(set) var layeredAccessUnits: [(layer: VideoLayer, index: Int, keyframe: Bool, accessUnit: [UInt8])] = []
    private var reducedFrameIndex = 0
    /// The sessions' last `.timeout` outputs: when each wants `handle(.timeout)` next.
    private(set) var cameraDeadline: MonotonicTime?
    private var viewerDeadline: MonotonicTime?
    private var cameraOutputs: [PeerSessionOutput] = []
    private var viewerOutputs: [ViewerOutput] = []

    /// - Parameter viewerClaimsFingerprint: the fingerprint the viewer's offer announces; a different
    ///   certificate than the one it really uses makes rtcam's DTLS check fail.
    /// - Parameter talk: the viewer offers its audio sendrecv and the camera has a speaker (issue 17).
    init(seed: UInt64, lossRate: Double = 0, offerSetup: String = "actpass", lieAboutViewerFingerprint: Bool = false,
         talk: Bool = false, extraOfferedExtensions: [String: UInt8] = [:],
         configure: (inout PeerSessionConfiguration) -> Void = { _ in }) throws {
        random = SeededRandom(seed: seed)
        network = SimulatedNetwork(seed: seed &+ 1)
        network.lossRate = lossRate
        fanout = MediaPacketizer(random: &random)

        let cameraCertificate = try DTLSCertificate.generate(commonName: "rtcam", random: &random)
        let viewerCertificate = try DTLSCertificate.generate(commonName: "viewer", random: &random)
        let impostor = try DTLSCertificate.generate(commonName: "impostor", random: &random)
        let claimed = lieAboutViewerFingerprint ? impostor : viewerCertificate

        let viewerICE = ICECredentials.random(ufragLength: 4, passwordLength: 24, using: &random)
        let cameraICE = ICECredentials.random(using: &random)
        var offer = RecvOnlyOfferBuilder.offer(iceUfrag: viewerICE.ufrag, icePassword: viewerICE.password,
                                               fingerprintSHA256: claimed.fingerprintSDP)
        if talk, let audio = offer.media.firstIndex(where: { $0.kind == "audio" }) {
            offer.media[audio].attributes = offer.media[audio].attributes.map {
                $0.name == "recvonly" ? SDPAttribute("sendrecv") : $0
            }
        }
        for index in offer.media.indices {
            for (uri, id) in extraOfferedExtensions.sorted(by: { $0.value < $1.value }) {
                offer.media[index].attributes.append(SDPAttribute("extmap", "\(id) \(uri)"))
            }
        }
        if offerSetup != "actpass" {
            offer = try SessionDescription(parsing: offer.serialized().replacingSetup(with: offerSetup))
        }
        let local = LocalTransport(
            iceUfrag: cameraICE.ufrag, icePassword: cameraICE.password,
            fingerprintSHA256: cameraCertificate.fingerprintSDP,
            candidates: [HostCandidate(address: Self.cameraAddress, foundation: "1", localPreference: 65_535)],
            videoSSRC: fanout.videoSSRC, videoRTXSSRC: fanout.videoRTXSSRC, audioSSRC: fanout.audioSSRC,
            cname: "rtcam", streamID: "rtcam")
        let (answer, negotiated) = try WHEPAnswerer.answer(
            offer: offer, capabilities: LocalCapabilities(h264ProfileLevelIDs: ["42e01f"], audio: true, video: true, speaker: talk),
            local: local)
        self.negotiated = negotiated

        var configuration = PeerSessionConfiguration(negotiated: negotiated, localICE: cameraICE,
                                                     certificate: cameraCertificate,
                                                     ntpNanosecondsAtMonotonicZero: 0xE000_0000 * 1_000_000_000, cname: "rtcam")
        configure(&configuration)
        camera = try PeerSession(configuration: configuration, now: now, random: &random)

        // The viewer reads what it needs from the answer text, as a browser would.
        let parsedAnswer = try SessionDescription(parsing: answer.serialized())
        let answerSetup = parsedAnswer.media.first?.setup ?? .passive
        viewer = try ViewerSession(
            configuration: ViewerConfiguration(
                localICE: viewerICE, remoteICE: cameraICE, remoteAddress: Self.cameraAddress,
                certificate: viewerCertificate, remoteFingerprintSHA256: cameraCertificate.fingerprintSHA256,
                dtlsRole: answerSetup == .active ? .server : .client,
                videoPayloadType: negotiated.video?.payloadType, videoRTXPayloadType: negotiated.video?.rtxPayloadType,
                audioPayloadType: negotiated.audio?.payloadType),
            now: now, random: &random)
    }

    /// Starts ICE from the viewer and media from the camera's side (30 fps video, 50 fps audio).
    func start(media: Bool = true) {
        viewer.start(now: now)
        if media {
            nextVideoFrame = now
            nextAudioFrame = now
        }
        pump()
    }

    /// Advances the virtual clock to `end`, delivering datagrams and firing timers in time order.
    func run(until end: MonotonicTime) {
        while true {
            let next = earliest(network.nextDelivery, cameraDeadline, viewerAlive ? viewerDeadline : nil,
                                nextVideoFrame, nextAudioFrame)
            guard let next, next <= end else { break }
            now = max(now, next)
            for datagram in network.deliverDue(now: now) {
                if datagram.to == Self.cameraAddress {
                    camera.handle(.receive(datagram.bytes, on: .host(datagram.from), now: now), media: fanout)
                } else if datagram.to == viewerAddress, viewerAlive {
                    viewer.handle(datagram.bytes, from: datagram.from, now: now)
                }
            }
            if let deadline = cameraDeadline, deadline <= now {
                camera.handle(.timeout(now: now), media: fanout)
                sendPacedMedia()
            }
            if viewerAlive, let deadline = viewerDeadline, deadline <= now {
                viewer.handleTimeout(now: now)
            }
            if let due = nextVideoFrame, due <= now {
                sendVideoFrame()
                nextVideoFrame = due + .nanoseconds(33_333_333)
            }
            if let due = nextAudioFrame, due <= now {
                let frame = random.bytes(Int(40 + random.next() % 80))
                sendMedia([fanout.packetizeAudio(opusFrame: frame, captureTime: now)])
                nextAudioFrame = due + .milliseconds(20)
            }
            pump()
        }
        now = max(now, end)
    }

    func run(for duration: Duration) { run(until: now + duration) }

    /// Sends what the sessions have queued now (a NACK the test just made), not at their next event.
    func flush() { pump() }

    /// Runs until the predicate holds or the limit passes; returns whether it held.
    @discardableResult
    func run(upTo limit: Duration, until predicate: () -> Bool) -> Bool {
        let end = now + limit
        while !predicate() {
            guard now < end else { return false }
            run(until: min(end, now + .milliseconds(5)))
        }
        return true
    }

    func stopMedia() {
        nextVideoFrame = nil
        nextAudioFrame = nil
    }

    var cameraConnected: Bool { cameraEvents.contains { if case .connected = $0.1 { return true }; return false } }
    var viewerConnected: Bool { viewer.isConnected }

    private func sendVideoFrame() {
        let isKeyframe = frameIndex % 60 == 0 || keyframeRequested
        keyframeRequested = false
        let accessUnit = SyntheticH264.accessUnit(index: frameIndex, keyframe: isKeyframe, scale: videoFrameScale,
                                                  random: &random)
        frameIndex += 1
        let packets = fanout.packetizeVideo(accessUnit: accessUnit, isKeyframe: isKeyframe, captureTime: now)
        if camera.state == .connected {
            if isKeyframe || camera.hasSentKeyframe {
                sentAccessUnits.append(accessUnit)
                sentAccessUnitTimes.append(now)
            }
            layeredAccessUnits.append((.full, frameIndex - 1, isKeyframe, accessUnit))
            sendMedia(packets)
        }
        guard sendsReducedLayer else { return }
        // The same picture, smaller, after the full one (as the daemon's x264 stage sends them).
        let reducedKeyframe = reducedFrameIndex % 90 == 0 || reducedKeyframeRequested
        reducedKeyframeRequested = false
        let reduced = SyntheticH264.accessUnit(index: reducedFrameIndex, keyframe: reducedKeyframe, scale: 1, random: &random)
        reducedFrameIndex += 1
        let reducedPackets = fanout.packetizeVideo(accessUnit: reduced, isKeyframe: reducedKeyframe, captureTime: now,
                                                   layer: .reduced)
        if camera.state == .connected {
            layeredAccessUnits.append((.reduced, reducedFrameIndex - 1, reducedKeyframe, reduced))
            sendMedia(reducedPackets)
        }
    }

    /// What the camera's pacer lets go at its deadline (the daemon's StreamHub.sendPacedMedia).
    private func sendPacedMedia() {
        var batch = DatagramBatch()
        guard let to = camera.protectDueMedia(now: now, into: &batch) else { return }
        for datagram in batch.datagrams { network.send(datagram, from: Self.cameraAddress, to: to.remote, now: now) }
    }

    /// The server's media path: the viewer's batch, sent datagram by datagram.
    private func sendMedia(_ packets: [OutgoingPacket]) {
        var batch = DatagramBatch()
        guard let to = camera.protectMedia(packets, now: now, into: &batch) else { return }
        for datagram in batch.datagrams { network.send(datagram, from: Self.cameraAddress, to: to.remote, now: now) }
    }

    /// Takes both sessions' outputs the way the daemon does: transmit, act on events, and keep the
    /// deadline each one ends with.
    private func pump() {
        cameraOutputs.removeAll(keepingCapacity: true)
        camera.drainOutputs(into: &cameraOutputs)
        for output in cameraOutputs {
            switch output {
            case let .transmit(bytes, to):
                network.send(bytes, from: Self.cameraAddress, to: to.remote, now: now)
            case let .event(event):
                cameraEvents.append((now, event))
                switch event {
                case .connected: keyframeRequested = true
                case .keyframeRequested:
                    if camera.wantedVideoLayer == .reduced { reducedKeyframeRequested = true } else { keyframeRequested = true }
                default: break
                }
            case let .timeout(deadline):
                cameraDeadline = deadline
            }
        }
        guard viewerAlive else { return }
        viewerOutputs.removeAll(keepingCapacity: true)
        viewer.drainOutputs(into: &viewerOutputs)
        for output in viewerOutputs {
            switch output {
            case let .transmit(bytes, to):
                network.send(bytes, from: viewerAddress, to: to, now: now)
            case let .event(event):
                viewerEvents.append((now, event))
                switch event {
                case let .videoAccessUnit(accessUnit, _):
                    receivedAccessUnits.append(accessUnit)
                    receivedAccessUnitTimes.append(now)
                case .audioFrame: receivedAudioFrames += 1
                default: break
                }
            case let .timeout(deadline):
                viewerDeadline = deadline
            }
        }
    }
}

/// Access units shaped like an encoder's: Annex-B, SPS+PPS+IDR on keyframes, sizes from a few
/// hundred bytes to tens of kilobytes so single NAL, STAP-A and FU-A packets all occur.
enum SyntheticH264 {
    static func accessUnit(index: Int, keyframe: Bool, scale: Int = 1, random: inout SeededRandom) -> [UInt8] {
        var au: [UInt8] = []
        func nal(_ header: UInt8, _ size: Int) {
            au += [0, 0, 0, 1, header]
            for _ in 0..<size {
                // Avoid start-code emulation: no byte pairs of zeros in the body.
                au.append(UInt8(truncatingIfNeeded: random.next() % 255) + 1)
            }
        }
        if keyframe {
            nal(0x67, 12)  // SPS
            nal(0x68, 4)   // PPS
            nal(0x65, 20_000 + Int(random.next() % 20_000))  // IDR slice
        } else {
            nal(0x41, (200 + Int(random.next() % 4_000)) * scale)      // non-IDR slice
        }
        return au
    }
}

extension String {
    /// The SDP with every a=setup line set to `role`. ("\r\n" is a single Character in Swift, so
    /// lines are split on `isNewline`, not on "\n".)
    func replacingSetup(with role: String) -> String {
        split(whereSeparator: \.isNewline).map { line in
            line.hasPrefix("a=setup:") ? "a=setup:\(role)" : String(line)
        }.joined(separator: "\r\n") + "\r\n"
    }
}
