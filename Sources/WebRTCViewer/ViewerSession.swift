import DTLS
import ICE
import RTCBase
import RTP
import SRTP
import WebRTCSession

/// What the receiving side learned from rtcam's answer, plus its own credentials.
public struct ViewerConfiguration: Sendable {
    public var localICE: ICECredentials
    public var remoteICE: ICECredentials
    public var remoteAddress: TransportAddress
    public var certificate: DTLSCertificate
    public var remoteFingerprintSHA256: [UInt8]
    /// The viewer's DTLS role: `.client` when rtcam answered `setup:passive`.
    public var dtlsRole: DTLSRole
    public var videoPayloadType: UInt8?
    public var videoRTXPayloadType: UInt8?
    public var audioPayloadType: UInt8?
    /// Ask for lost video packets with NACK (RFC 4585 §6.2.1).
    public var sendsNACK: Bool
    public var receiverReportInterval: Duration
    public var nackInterval: Duration
    /// How long a hole in the video sequence is waited for (NACK recovery) before it is skipped.
    public var maximumReorderDelay: Duration

    public init(localICE: ICECredentials, remoteICE: ICECredentials, remoteAddress: TransportAddress,
                certificate: DTLSCertificate, remoteFingerprintSHA256: [UInt8], dtlsRole: DTLSRole,
                videoPayloadType: UInt8?, videoRTXPayloadType: UInt8?, audioPayloadType: UInt8?,
                sendsNACK: Bool = true, receiverReportInterval: Duration = .seconds(1),
                nackInterval: Duration = .milliseconds(20), maximumReorderDelay: Duration = .milliseconds(600)) {
        self.localICE = localICE
        self.remoteICE = remoteICE
        self.remoteAddress = remoteAddress
        self.certificate = certificate
        self.remoteFingerprintSHA256 = remoteFingerprintSHA256
        self.dtlsRole = dtlsRole
        self.videoPayloadType = videoPayloadType
        self.videoRTXPayloadType = videoRTXPayloadType
        self.audioPayloadType = audioPayloadType
        self.sendsNACK = sendsNACK
        self.receiverReportInterval = receiverReportInterval
        self.nackInterval = nackInterval
        self.maximumReorderDelay = maximumReorderDelay
    }
}

public enum ViewerEvent: Equatable, Sendable {
    case connected(SRTPProfile)
    /// A whole H.264 access unit (Annex-B) and its RTP timestamp.
    case videoAccessUnit([UInt8], rtpTimestamp: UInt32)
    case audioFrame([UInt8], rtpTimestamp: UInt32)
    case senderReport(ssrc: UInt32, ntpTimestamp: UInt64, rtpTimestamp: UInt32)
    case failed(reason: String)
    case closed
    /// One DTLS application-data record (an SCTP packet when data channels run over it, RFC 8261).
    case applicationData([UInt8])
}

public enum ViewerOutput: Sendable {
    case transmit([UInt8], to: TransportAddress)
    case event(ViewerEvent)
    case timeout(MonotonicTime?)
}

public struct ViewerStatistics: Equatable, Sendable {
    public var videoPacketsReceived = 0
    public var retransmissionsReceived = 0
    public var audioPacketsReceived = 0
    public var nackPacketsSent = 0
    public var sequenceNumbersNACKed = 0
    public var accessUnitsReceived = 0
    public var accessUnitsDropped = 0
    public var holesSkipped = 0
    public var keyframeRequestsSent = 0
    public var srtpFailures = 0
}

/// The receiving end of a WHEP session, built from the same pieces as rtcam (DESIGN.md "Two peers on
/// a simulated network"): ICE controlling (full), DTLS in the role the answer gives, SRTP, RTP
/// reassembly with NACK/RTX recovery, and RTCP receiver reports. Used by tests and the load generator.
public final class ViewerSession {
    public let configuration: ViewerConfiguration
    public private(set) var statistics = ViewerStatistics()
    public private(set) var isConnected = false
    public private(set) var isFinished = false

    private var ice: ICEControllingAgent
    private let dtls: DTLSEndpoint
    private var dtlsStarted = false
    private var srtp: SRTPSession?
    /// The report blocks of the last SR or RR from the camera (what it says about the viewer's own
    /// stream when it talks: issue 17).
    public private(set) var lastReportBlocks: [ReportBlock] = []
    private var outputs: [ViewerOutput] = []
    private let ssrc: UInt32
    private var videoSSRC: UInt32?
    private var videoStatistics: ReceiveStatistics?
    private var reorder = ReorderBuffer()
    private var depacketizer = H264Depacketizer()
    private var nextNACK: MonotonicTime?
    /// True until an IDR access unit arrives, and again after a hole was skipped: the decoder
    /// cannot go on, so a PLI asks for a keyframe (RFC 4585 §6.3.1), at most every 300 ms.
    private var needsKeyframe = true
    private var lastKeyframeRequest: MonotonicTime?
    private var nextReceiverReport: MonotonicTime?

    public init(configuration: ViewerConfiguration, now: MonotonicTime,
                random: inout some RandomNumberGenerator) throws(DTLSError) {
        self.configuration = configuration
        ice = ICEControllingAgent(local: configuration.localICE, remote: configuration.remoteICE,
                                  remoteAddress: configuration.remoteAddress, tieBreaker: random.next(),
                                  now: now, random: SeededRandom(seed: random.next()))
        dtls = try DTLSEndpoint(role: configuration.dtlsRole, certificate: configuration.certificate,
                                remoteFingerprintSHA256: configuration.remoteFingerprintSHA256,
                                now: now, random: &random)
        ssrc = UInt32.random(in: 1...UInt32.max, using: &random)
    }

    public func start(now: MonotonicTime) {
        outputs += ice.start(now: now).compactMap(translate)
    }

    public func handle(_ datagram: [UInt8], from: TransportAddress, now: MonotonicTime) {
        guard !isFinished else { return }
        switch DatagramKind(classifying: datagram) {
        case .stun:
            let wasConnected = ice.isConnected
            outputs += ice.receive(datagram, from: from, now: now).compactMap(translate)
            if !wasConnected, ice.isConnected, configuration.dtlsRole == .client, !dtlsStarted {
                dtlsStarted = true
                dtls.start(now: now)
            }
            drainDTLS(now: now)
        case .dtls:
            dtls.receive(datagram, now: now)
            drainDTLS(now: now)
        case .rtp:
            guard let srtp else { return }
            do {
                let plain = try srtp.unprotectRTP(datagram)
                let packet = try RTPPacket(parsing: plain)
                receiveRTP(packet, now: now)
            } catch {
                statistics.srtpFailures += 1
            }
        case .rtcp:
            guard let srtp else { return }
            guard let plain = try? srtp.unprotectRTCP(datagram),
                  let packets = try? RTCPPacket.parseCompound(plain) else {
                statistics.srtpFailures += 1
                return
            }
            for packet in packets {
                switch packet {
                case let .senderReport(report):
                    if report.ssrc == videoSSRC { videoStatistics?.senderReportReceived(ntp: report.ntpTimestamp, arrival: now) }
                    if !report.reportBlocks.isEmpty { lastReportBlocks = report.reportBlocks }
                    outputs.append(.event(.senderReport(ssrc: report.ssrc, ntpTimestamp: report.ntpTimestamp,
                                                        rtpTimestamp: report.rtpTimestamp)))
                case let .receiverReport(report):
                    if !report.reportBlocks.isEmpty { lastReportBlocks = report.reportBlocks }
                case .goodbye:
                    isFinished = true
                    outputs.append(.event(.closed))
                default:
                    break
                }
            }
        case .unknown:
            break
        }
    }

    public func handleTimeout(now: MonotonicTime) {
        guard !isFinished else { return }
        outputs += ice.handleTimeout(now: now).compactMap(translate)
        if !dtls.isConnected, let deadline = dtls.nextDeadline, deadline <= now {
            dtls.handleTimeout(now: now)
            drainDTLS(now: now)
        }
        if let due = nextNACK, due <= now {
            sendNACKs(now: now)
            nextNACK = now + configuration.nackInterval
        }
        flushVideo(now: now)
        if let due = nextReceiverReport, due <= now {
            sendReceiverReport(now: now)
            nextReceiverReport = now + configuration.receiverReportInterval
        }
    }

    /// ICE restart from the viewer's side (RFC 8445 §9): new credentials, checks start over.
    public func restartICE(local: ICECredentials, remote: ICECredentials, now: MonotonicTime,
                           random: inout some RandomNumberGenerator) {
        ice = ICEControllingAgent(local: local, remote: remote, remoteAddress: configuration.remoteAddress,
                                  tieBreaker: random.next(), now: now, random: SeededRandom(seed: random.next()))
        outputs += ice.start(now: now).compactMap(translate)
    }

    /// Sends a NACK (RFC 4585 §6.2.1) naming `sequenceNumbers` as they are (duplicates, any number):
    /// what a misbehaving or hostile viewer may send, for tests and benchmarks of the sender's limits.
    public func sendNACK(_ sequenceNumbers: [UInt16]) {
        guard let srtp, let videoSSRC else { return }
        let nack = RTCPPacket.genericNACK(GenericNACK(senderSSRC: ssrc, mediaSSRC: videoSSRC,
                                                      lostSequenceNumbers: sequenceNumbers)).serialized()
        if let protected = try? srtp.protectRTCP(nack) {
            outputs.append(.transmit(protected, to: configuration.remoteAddress))
        }
    }

    /// Sends one plaintext RTP packet, SRTP-protected, to the camera: a talking viewer's audio
    /// (talkback, issue 17), for tests and benchmarks. False before SRTP is keyed or if it refused.
    @discardableResult
    public func sendRTP(_ packet: [UInt8]) -> Bool {
        guard let srtp, let protected = try? srtp.protectRTP(packet) else { return false }
        outputs.append(.transmit(protected, to: configuration.remoteAddress))
        return true
    }

    /// Sends `bytes` as one DTLS application-data record (an SCTP packet, RFC 8261 §4); false
    /// before DTLS is connected or when it does not fit a record.
    @discardableResult
    public func sendApplicationData(_ bytes: [UInt8], now: MonotonicTime) -> Bool {
        guard dtls.isConnected, bytes.count <= dtls.maximumRecordPayload else { return false }
        do { try dtls.sendApplicationData(bytes) } catch { return false }
        drainDTLS(now: now)
        return true
    }

    /// Asks for a keyframe (RFC 4585 §6.3.1 PLI).
    public func requestKeyframe() {
        guard let srtp, let videoSSRC else { return }
        let pli = RTCPPacket.pictureLossIndication(senderSSRC: ssrc, mediaSSRC: videoSSRC).serialized()
        if let protected = try? srtp.protectRTCP(pli) {
            statistics.keyframeRequestsSent += 1
            outputs.append(.transmit(protected, to: configuration.remoteAddress))
        }
    }

    /// What the viewer has to do after the last input, in order, then one `.timeout` with its next
    /// deadline: the same shape as PeerSession's, appended to the caller's reused array.
    public func drainOutputs(into drained: inout [ViewerOutput]) {
        drained.append(contentsOf: outputs)
        outputs.removeAll(keepingCapacity: true)
        drained.append(.timeout(nextDeadline))
    }

    public var nextDeadline: MonotonicTime? {
        guard !isFinished else { return nil }
        return earliest(ice.nextDeadline, dtls.isConnected ? nil : dtls.nextDeadline, nextNACK,
                        nextReceiverReport, reorder.nextDeadline(maximumDelay: configuration.maximumReorderDelay))
    }

    // MARK: - Internals

    private func translate(_ action: ICEAction) -> ViewerOutput? {
        switch action {
        case let .send(bytes, path): return .transmit(bytes, to: path.remote)
        case .consentLost:
            isFinished = true
            return .event(.failed(reason: "ICE consent lost"))
        case .checked, .selected, .rejected: return nil
        }
    }

    private func drainDTLS(now: MonotonicTime) {
        while let datagram = dtls.pollTransmit() {
            outputs.append(.transmit(datagram, to: configuration.remoteAddress))
        }
        while let event = dtls.pollEvent() {
            switch event {
            case let .connected(keys):
                do {
                    srtp = try SRTPSession(keys: keys, isClient: configuration.dtlsRole == .client)
                    isConnected = true
                    nextNACK = now + configuration.nackInterval
                    nextReceiverReport = now + configuration.receiverReportInterval
                    outputs.append(.event(.connected(keys.profile)))
                } catch {
                    isFinished = true
                    outputs.append(.event(.failed(reason: "SRTP: \(error)")))
                }
            case let .failed(error):
                isFinished = true
                outputs.append(.event(.failed(reason: "DTLS: \(error)")))
            case .closed:
                isFinished = true
                outputs.append(.event(.closed))
            case let .applicationData(bytes):
                outputs.append(.event(.applicationData(bytes)))
            }
        }
    }

    private func receiveRTP(_ received: RTPPacket, now: MonotonicTime) {
        var packet = received
        if let rtxPT = configuration.videoRTXPayloadType, packet.payloadType == rtxPT {
            // RFC 4588 §4: restore the original packet from the RTX payload.
            guard let videoPT = configuration.videoPayloadType, let videoSSRC,
                  let original = RTXPacket.unwrap(packet, originalPayloadType: videoPT, originalSSRC: videoSSRC)
            else { return }
            statistics.retransmissionsReceived += 1
            packet = original
        }
        if packet.payloadType == configuration.videoPayloadType {
            if videoSSRC == nil {
                videoSSRC = packet.ssrc
                videoStatistics = ReceiveStatistics(ssrc: packet.ssrc, clockRate: 90_000)
            }
            guard packet.ssrc == videoSSRC else { return }
            statistics.videoPacketsReceived += 1
            videoStatistics?.packetReceived(sequenceNumber: packet.sequenceNumber, rtpTimestamp: packet.timestamp,
                                            arrival: now)
            reorder.insert(packet, arrival: now)
            flushVideo(now: now)
        } else if packet.payloadType == configuration.audioPayloadType {
            statistics.audioPacketsReceived += 1
            outputs.append(.event(.audioFrame(packet.payload, rtpTimestamp: packet.timestamp)))
        }
    }

    private func flushVideo(now: MonotonicTime) {
        let (packets, skipped) = reorder.popReady(now: now, maximumDelay: configuration.maximumReorderDelay)
        if skipped > 0 {
            statistics.holesSkipped += skipped
            depacketizer = H264Depacketizer()  // the AU around the hole is lost
            needsKeyframe = true
        }
        for packet in packets {
            if let accessUnit = depacketizer.push(packet) {
                statistics.accessUnitsReceived += 1
                if Self.containsIDR(accessUnit) { needsKeyframe = false }
                outputs.append(.event(.videoAccessUnit(accessUnit, rtpTimestamp: packet.timestamp)))
            }
        }
        if needsKeyframe, videoSSRC != nil, lastKeyframeRequest.map({ now - $0 >= .milliseconds(300) }) ?? true {
            lastKeyframeRequest = now
            requestKeyframe()
        }
    }

    /// Whether an Annex-B access unit holds an IDR slice (nal_unit_type 5, H.264 §7.4.1).
    static func containsIDR(_ accessUnit: [UInt8]) -> Bool {
        var zeros = 0
        for (index, byte) in accessUnit.enumerated() {
            if byte == 0 { zeros += 1; continue }
            if byte == 1, zeros >= 2, index + 1 < accessUnit.count, accessUnit[index + 1] & 0x1F == 5 { return true }
            zeros = 0
        }
        return false
    }

    private func sendNACKs(now: MonotonicTime) {
        guard configuration.sendsNACK, let srtp, let videoSSRC, var stats = videoStatistics else { return }
        let missing = stats.missingSequenceNumbers(now: now)
        videoStatistics = stats
        guard !missing.isEmpty else { return }
        let nack = RTCPPacket.genericNACK(GenericNACK(senderSSRC: ssrc, mediaSSRC: videoSSRC,
                                                      lostSequenceNumbers: missing)).serialized()
        if let protected = try? srtp.protectRTCP(nack) {
            statistics.nackPacketsSent += 1
            statistics.sequenceNumbersNACKed += missing.count
            outputs.append(.transmit(protected, to: configuration.remoteAddress))
        }
    }

    private func sendReceiverReport(now: MonotonicTime) {
        guard let srtp else { return }
        var blocks: [ReportBlock] = []
        if var stats = videoStatistics {
            blocks.append(stats.reportBlock(now: now))
            videoStatistics = stats
        }
        let report = RTCPPacket.receiverReport(ReceiverReport(ssrc: ssrc, reportBlocks: blocks))
        if let protected = try? srtp.protectRTCP(RTCPPacket.compound([report])) {
            outputs.append(.transmit(protected, to: configuration.remoteAddress))
        }
    }
}

/// Puts video packets back in sequence order (the network and NACK retransmissions reorder them);
/// a hole is waited for up to `maximumDelay`, then skipped. The first packets are held for
/// `startupDelay` so that the stream starts at the lowest sequence number of the first burst.
struct ReorderBuffer {
    var startupDelay: Duration = .milliseconds(50)
    private var unwrapper = SequenceNumberUnwrapper()
    private var pending: [Int64: (packet: RTPPacket, arrival: MonotonicTime)] = [:]
    private var nextExpected: Int64?
    private var firstArrival: MonotonicTime?

    mutating func insert(_ packet: RTPPacket, arrival: MonotonicTime) {
        let sequence = unwrapper.unwrap(packet.sequenceNumber)
        if let nextExpected, sequence < nextExpected { return }  // late duplicate
        if firstArrival == nil { firstArrival = arrival }
        pending[sequence] = (packet, arrival)
    }

    func nextDeadline(maximumDelay: Duration) -> MonotonicTime? {
        guard !pending.isEmpty else { return nil }
        if nextExpected == nil, let firstArrival { return firstArrival + startupDelay }
        return pending.values.map(\.arrival).min().map { $0 + maximumDelay }
    }

    mutating func popReady(now: MonotonicTime, maximumDelay: Duration) -> (packets: [RTPPacket], skipped: Int) {
        if nextExpected == nil {
            guard let firstArrival, now - firstArrival >= startupDelay, let lowest = pending.keys.min() else {
                return ([], 0)
            }
            nextExpected = lowest
        }
        var ready: [RTPPacket] = []
        var skipped = 0
        while let expected = nextExpected, !pending.isEmpty {
            if let entry = pending.removeValue(forKey: expected) {
                ready.append(entry.packet)
                nextExpected = expected + 1
                continue
            }
            // A hole: skip it only when the oldest waiting packet has waited long enough.
            guard let oldest = pending.values.map(\.arrival).min(), now - oldest >= maximumDelay,
                  let lowest = pending.keys.min() else { break }
            skipped += Int(lowest - expected)
            nextExpected = lowest
        }
        return (ready, skipped)
    }
}
