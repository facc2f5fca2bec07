import CongestionControl
import DataChannel
import DTLS
import ICE
import RTCBase
import RTP
import SDP
import SRTP
import STUN

/// What one viewer's session needs to start: the negotiated SDP, rtcam's own ICE credentials and
/// certificate, and how to turn monotonic time into the wall clock for Sender Reports.
public struct PeerSessionConfiguration: Sendable {
    public var negotiated: NegotiatedSession
    public var localICE: ICECredentials
    public var certificate: DTLSCertificate
    /// Nanoseconds since 1900-01-01 (NTP's epoch) at MonotonicTime.zero, read once by the daemon.
    public var ntpNanosecondsAtMonotonicZero: UInt64
    public var cname: String
    public var senderReportInterval: Duration
    /// mbedTLS's handshake trace on stderr, 1...4 (0: none); see DTLSEndpoint.
    public var dtlsDebugLevel: Int32
    /// A session that has not finished ICE and DTLS by then fails (a viewer slot held by an offer that
    /// never connects, or that answers checks but never does DTLS, is given back).
    public var connectTimeout: Duration = .seconds(10)
    /// The IPs checks are answered from: the WHEP client's and its offered candidates' (nil: any).
    /// Media then goes nowhere else: a viewer cannot point the stream at another host (RFC 7675 §1).
    public var allowedRemoteIPs: Set<TransportAddress.IP>?
    /// The ICE agent (issue 19): lite answers checks; full also checks, so it gets through NATs.
    public var iceMode = ICEMode.lite
    /// Full ICE: rtcam's candidates (host, server-reflexive), and the offer's a=candidate values
    /// (RFC 8839 §5.1) with whether the offer ended them (a=end-of-candidates).
    public var localCandidates: [ICECandidate] = []
    public var remoteCandidates: [String] = []
    public var remoteCandidatesComplete = false
    /// Full ICE: Ta, the pacing of new checks (RFC 8445 §14.2: 50 ms by default, never under 5 ms).
    public var icePacingInterval: Duration = .milliseconds(50)
    /// Most addresses one session keeps as checked (the oldest but the selected one is forgotten).
    public var maximumCheckedAddresses = 4
    /// Retransmissions a viewer may ask for: each packet at most this many times, and at most this
    /// share of the bytes sent to it over the last second (RFC 4585 §6.2.1 puts no bound on NACKs).
    /// Six, not two: at 10 % loss and 70 ms RTT into Chromium (which asks up to 10 times, again
    /// whenever a resend has not come within its RTT estimate) two resends left ~1 packet in 6 of
    /// the NACKed unrecovered and the picture froze until the next IDR, up to 1.6 s (README,
    /// Reliability). The byte budget, not this, is what bounds a NACK storm.
    public var maximumRetransmissionsPerPacket = 6
    /// Copies of each resend (as RTX, each its own RTX sequence number) by the loss the viewer last
    /// reported: the first copy count whose threshold the loss reaches, else one. At 10 % loss a
    /// single resend is itself lost one time in ten, and the viewer asks again only after its RTT
    /// estimate, so the frame waits two round trips and more (a freeze over 200 ms at 70 ms RTT);
    /// with three copies one resend in a thousand is lost: at 1 Mb/s and 10 % loss (~800 first
    /// resends a minute) still about one ~200 ms freeze a minute in Chromium, measured at 50 ms RTT
    /// on the host (Chromium asks again ~100 ms after its first NACK); four copies from 8 % loss
    /// make it one in ten thousand, for 40 % of the media in resends. Without RTX a copy would be
    /// an SRTP replay to the viewer: one resend then.
    public var redundantRetransmissions: [(lossAtLeast: Double, copies: Int)] = [(0.08, 4), (0.05, 3), (0.02, 2)]
    public var retransmissionBudgetShare = 0.5
    /// Congestion control (issue 24): the viewer's estimate starts at, and stays within, this; the
    /// owner sets it from the configured bitrate. Used where the viewer sends transport-cc feedback
    /// (with the transport-wide sequence number answered) or REMB.
    public var bandwidth = BandwidthEstimatorConfiguration(startBitsPerSecond: 3_000_000, minimumBitsPerSecond: 100_000,
                                                           maximumBitsPerSecond: 3_000_000)
    /// Video that waited in the pacer longer than this is dropped, and the viewer starts again at
    /// the next keyframe (a link below what the one encoder sends: fewer pictures, not later ones).
    public var staleVideoAfter: Duration = .milliseconds(400)
    /// What the sender does while the viewer's link is congested (a rate step): pacing at what the
    /// link delivers, the encoder below the estimate until the pacer's backlog is gone, and a
    /// longer wait before stale video is dropped (CongestionControl's `CongestionResponse`).
    public var congestionResponse = CongestionResponse()
    /// A viewer that dropped stale video asks for a keyframe at most this often.
    public var staleKeyframeInterval: Duration = .seconds(3)
    /// The SSRC of video resends (RTX, RFC 4588), for probes sent as RTX; the owner's packetizer's.
    public var videoRTXSSRC: UInt32 = 0

    public init(negotiated: NegotiatedSession, localICE: ICECredentials, certificate: DTLSCertificate,
                ntpNanosecondsAtMonotonicZero: UInt64, cname: String, senderReportInterval: Duration = .seconds(1),
                dtlsDebugLevel: Int32 = 0) {
        self.negotiated = negotiated
        self.localICE = localICE
        self.certificate = certificate
        self.ntpNanosecondsAtMonotonicZero = ntpNanosecondsAtMonotonicZero
        self.cname = cname
        self.senderReportInterval = senderReportInterval
        self.dtlsDebugLevel = dtlsDebugLevel
    }
}

public enum PeerSessionInput: Sendable {
    /// A datagram that came in on `path`: from `path.remote`, straight to the media socket or
    /// unwrapped from the TURN allocation (the owner's job, RFC 8656).
    case receive([UInt8], on: TransportPath, now: MonotonicTime)
    case timeout(now: MonotonicTime)
}

public enum PeerSessionEvent: Equatable, Sendable {
    /// ICE chose (or moved to) this path to the viewer.
    case iceSelected(TransportPath)
    /// A check on this path was valid: datagrams on it belong to this session from now on.
    case addressVerified(TransportPath)
    /// The session no longer takes datagrams on this path (more checked paths than it keeps).
    case addressForgotten(TransportPath)
    /// DTLS finished and SRTP is keyed: media flows from now on.
    case connected(SRTPProfile)
    /// The viewer asked for a keyframe: PLI (RFC 4585 §6.3.1) or a new FIR (RFC 5104 §4.3.1).
    case keyframeRequested
    /// The send-side estimate of what the viewer's link takes moved (issue 24: from transport-cc
    /// feedback, receiver reports and REMB), bits/s.
    case bitrateEstimate(bitsPerSecond: UInt64)
    /// Consent lost (RFC 7675 §5.1): no valid check for 30 s. The session sends nothing more.
    case disconnected(reason: String)
    /// DTLS failed (handshake error, certificate not matching the offer's fingerprint).
    case failed(reason: String)
    /// The viewer left: DTLS close_notify or RTCP BYE.
    case closed
    /// An Opus packet from a viewer whose audio was answered sendrecv (talkback, issue 17).
    case audioReceived(ReceivedAudioPacket)
    /// Data channels (RFC 8831): a channel opened, a message, a channel closed, SCTP up or down.
    case dataChannel(DataChannelEvent)
}

public enum PeerSessionOutput: Sendable {
    /// A datagram for `path.remote`, sent from the path's base (the relay's: wrapped for the TURN server).
    case transmit([UInt8], on: TransportPath)
    case event(PeerSessionEvent)
    /// Nothing more to do now; call `handle(.timeout)` at this time (nil: only input wakes the session).
    case timeout(MonotonicTime?)
}

public enum PeerSessionState: Equatable, Sendable {
    case checking, securing, connected, disconnected, failed, closed

    public var isFinished: Bool { self == .disconnected || self == .failed || self == .closed }
}

/// Counters a viewer's session keeps, for /api/status and tests.
public struct PeerSessionStatistics: Equatable, Sendable {
    public var videoPacketsSent = 0
    public var audioPacketsSent = 0
    public var bytesSent = 0
    public var nackedPackets = 0
    public var retransmittedPackets = 0
    public var retransmissionsMissingFromHistory = 0
    public var keyframeRequests = 0
    public var roundTripTime: Duration?
    /// From the last Receiver Report about video (RFC 3550 §6.4.1), 0...1.
    public var fractionLost: Double = 0
    public var cumulativeLost: Int32 = 0
    public var rejectedDatagrams = 0
    public var srtcpFailures = 0
    /// Packets SRTP refused to protect (not sent).
    public var srtpProtectFailures = 0
    /// NACKed packets not resent: named twice in one NACK, resent too often already, or over budget.
    public var retransmissionsRefused = 0
    /// Extra copies of resends sent because the viewer reported heavy loss (redundantRetransmissions).
    public var redundantRetransmissions = 0
    /// Extra copies the loss called for but the byte budget did not leave room for (not sent).
    public var redundantRetransmissionsWithheld = 0
    /// Extra copies the loss called for but not sent because the estimator saw congestion (its
    /// delay detector overusing, or its estimate under half the start).
    public var redundantRetransmissionsHeldForCongestion = 0
    /// NACKs for a packet resent less than a round trip ago (the resend is on its way): not answered.
    public var retransmissionsInFlight = 0
    /// Checks from an IP that is neither the WHEP client's nor one of its candidates' (not answered).
    public var checksFromForeignAddresses = 0
    /// DTLS datagrams that arrived after the endpoint was released (see `PeerSession.retireDTLS`).
    public var ignoredDTLSAfterHandshake = 0
    public var lastBitrateEstimate: UInt64?
    /// The send-side estimate last surfaced (issue 24), bits/s.
    public var estimatedBitsPerSecond: Int?
    /// Probe clusters started, and the RTX packets sent for them.
    public var probeClusters = 0
    public var probePacketsSent = 0
    /// Video packets dropped from the pacer because they waited too long (a link below the stream).
    public var pacedVideoPacketsDropped = 0
    /// Talkback (issue 17): Opus packets received and surfaced, and SRTP packets that failed to verify.
    public var audioPacketsReceived = 0
    public var srtpUnprotectFailures = 0
}


/// One viewer's whole WebRTC session, sans-IO (DESIGN.md): datagrams and time in, datagrams, events
/// and the next deadline out. ICE (lite or full, controlled) → DTLS (role from SDP) → SRTP, then RTP out and
/// RTCP feedback in. No clock, no socket, no thread inside.
public final class PeerSession {
    public let configuration: PeerSessionConfiguration
    public private(set) var state: PeerSessionState = .checking
    public internal(set) var statistics = PeerSessionStatistics()

    private var ice: ICEAgent
    /// The IPs checks are answered from (the configuration's, and trickled candidates' for full ICE).
    private var allowedRemoteIPs: Set<TransportAddress.IP>?
    /// rtcam's ICE credentials now (an ICE restart replaces them).
    public private(set) var localICE: ICECredentials
    /// The DTLS endpoint until the handshake is over on both sides; then released (see
    /// `retireDTLS`): an mbedTLS context holds about 33 KB of record buffers plus its own parsed
    /// certificate, key, DRBG and the peer's certificate, and SRTP needs none of it. A session with
    /// data channels keeps it: SCTP travels in its records (RFC 8261).
    private var dtls: DTLSEndpoint?
    private let dtlsRole: DTLSRole
    private var dtlsStarted = false
    private var srtp: SRTPSession?
    /// Paths that passed an ICE check (RFC 8445 §7.3): the only ones DTLS and RTCP are taken from.
    private var checkedPaths: [TransportPath] = []
    /// When the session must be connected (nil once it is).
    private var connectDeadline: MonotonicTime?
    /// Resends per sequence number, for the packets still in the shared history.
    /// Per NACKed sequence number: how often it was resent, and when last.
    private var retransmissions: [UInt16: (count: Int, last: MonotonicTime)] = [:]
    /// Resends (copies counted) waiting in the pacer, by sequence number.
    private var queuedResends: [UInt16: Int] = [:]
    /// Bytes sent and resent in the current and the previous one-second window (the budget).
    private var budgetWindow = RetransmissionBudget()
    private var nackedShare = NACKedShare()
    /// Where media goes: the nominated path, else the first path that passed a check.
    public private(set) var remotePath: TransportPath?
    /// The viewer's address media goes to (through the relay when `remotePath` is relayed).
    public var remoteAddress: TransportAddress? { remotePath?.remote }
    var outputs: [PeerSessionOutput] = []
    var sentVideoKeyframe = false
    /// Which video layer this viewer is on, and its numbering across switches (issue 24).
    var videoLayers = VideoLayerRewriter()
    private var rtxSequence: UInt16
    private var nextSenderReport: MonotonicTime?
    private var lastFIRSequenceNumber: UInt8?
    private var videoOctetsSent: UInt32 = 0
    private var audioOctetsSent: UInt32 = 0
    private var videoPacketCount: UInt32 = 0
    private var audioPacketCount: UInt32 = 0
    private var senderReportJitter: SeededRandom
    /// The talking viewer's audio stream (issue 17): what rtcam's reports tell it (RFC 3550 §6.4.1),
    /// so its Opus encoder learns the loss it should protect against with in-band FEC.
    private var talkerStatistics: ReceiveStatistics?
    /// Set when the DTLS endpoint can go (see `retireDTLS`); acted on once the current input is done.
    private var retireDTLSPending = false
    /// SCTP and data channels, when the answer accepted them (PeerSession+DataChannels.swift).
    var dataChannels: SessionDataChannels?
    /// The header extensions this viewer negotiated per stream, and the block for one packet (reused).
    private let videoExtensions: SendHeaderExtensions
    private let audioExtensions: SendHeaderExtensions
    private var extensionBlock: [UInt8] = []
    /// The next transport-wide sequence number (one series for every stream to this viewer).
    private var transportSequenceNumber: UInt16 = 1
    /// When each stream last carried abs-capture-time (capture clock): once a second is enough, as
    /// the RTP timestamps follow the same clock exactly and a receiver extrapolates between.
    private var videoCaptureTimeSentAt: MonotonicTime?
    private var audioCaptureTimeSentAt: MonotonicTime?
    /// Issue 24 (PeerSession+Congestion.swift): the send-side estimate (nil: the viewer sends no
    /// feedback to estimate from), whether any feedback came yet, the last estimate surfaced, the
    /// pacer, and the latest video packets (what probes resend).
    var bandwidth: SendSideBandwidthEstimator?
    var bandwidthInformed = false
    var lastSurfacedEstimate: Int?
    var surfacedCongestionEpisode = false
    var pacer: Pacer<PacedPacket>
    var congestion = CongestionResponse()
    var recentVideo: [OutgoingPacket] = []
    var staleVideoExemptUntil: MonotonicTime?
    var lastStaleKeyframeRequest: MonotonicTime?
    private var recentVideoNext = 0
    var rtxSSRCForProbes: UInt32 { configuration.videoRTXSSRC }

    public init(configuration: PeerSessionConfiguration, now: MonotonicTime,
                random: inout some RandomNumberGenerator) throws(DTLSError) {
        self.configuration = configuration
        let negotiated = configuration.negotiated
        localICE = configuration.localICE
        let remoteICE = ICECredentials(ufrag: negotiated.remoteICEUfrag, password: negotiated.remoteICEPassword)
        allowedRemoteIPs = configuration.allowedRemoteIPs
        switch configuration.iceMode {
        case .lite:
            ice = .lite(ICELiteAgent(local: configuration.localICE, remote: remoteICE, now: now))
        case .full:
            var iceConfiguration = ICEFullAgent.Configuration()
            iceConfiguration.allowedRemoteIPs = configuration.allowedRemoteIPs
            iceConfiguration.pacingInterval = configuration.icePacingInterval
            ice = .full(ICEFullAgent(role: .controlled, local: configuration.localICE, remote: remoteICE,
                                     localCandidates: configuration.localCandidates, tieBreaker: random.next(),
                                     configuration: iceConfiguration, now: now, random: SeededRandom(seed: random.next())))
        }
        dtlsRole = negotiated.localDTLSRole == .client ? .client : .server
        dtls = try DTLSEndpoint(role: dtlsRole, certificate: configuration.certificate,
                                remoteFingerprintSHA256: negotiated.remoteFingerprintSHA256,
                                now: now, random: &random, debugLevel: configuration.dtlsDebugLevel)
        rtxSequence = UInt16.random(in: 0...UInt16.max, using: &random)
        videoExtensions = Self.sendExtensions(negotiated.video?.extensionIDs ?? [:],
                                              transportCC: negotiated.video?.transportCC ?? false, video: true)
        audioExtensions = Self.sendExtensions(negotiated.audio?.extensionIDs ?? [:],
                                              transportCC: negotiated.audio?.transportCC ?? false, video: false)
        extensionBlock.reserveCapacity(SendHeaderExtensions.maximumBlockSize)
        let sendsFeedback = (negotiated.video?.transportCC == true && videoExtensions.transportSequenceNumberID != nil)
            || negotiated.video?.remb == true
        if sendsFeedback {
            bandwidth = SendSideBandwidthEstimator(configuration: configuration.bandwidth, now: now)
        }
        congestion = configuration.congestionResponse
        // The pacer never speeds up to empty its queue: video that waits too long is dropped instead
        // (staleVideoAfter), which a link below the stream needs.
        pacer = Pacer(configuration: PacerConfiguration(
            queueDelayLimit: .seconds(3600),
            initialPacingBitsPerSecond: Int(Double(configuration.bandwidth.startBitsPerSecond) * configuration.bandwidth.pacingFactor)))
        senderReportJitter = SeededRandom(seed: random.next())
        connectDeadline = now + configuration.connectTimeout
        addRemoteCandidates(configuration.remoteCandidates, endOfCandidates: configuration.remoteCandidatesComplete, now: now)
        if let negotiatedChannels = negotiated.dataChannel {
            dataChannels = SessionDataChannels(negotiated: negotiatedChannels, dtlsRole: dtlsRole, random: &random)
        }
    }

    // MARK: - Input

    public func handle(_ input: PeerSessionInput, media: MediaPacketizer) {
        switch input {
        case let .receive(datagram, path, now):
            receive(datagram, on: path, now: now, media: media)
            if retireDTLSPending { retireDTLS() }
        case let .timeout(now):
            handleTimeout(now: now, media: media)
        }
    }

    /// This viewer's share of packetized media, protected with its SRTP keys, appended to `batch`
    /// (the caller's reused buffer: nothing is allocated per viewer and packet), and where to send
    /// it; nil, and nothing appended, before the session is connected. Video starts at a keyframe.
    /// Media goes out this way only, never through `pollOutput`: a frame reaches each viewer as one
    /// batch, which the server hands to the kernel with as few writes as it can.
    public func protectMedia(_ packets: [OutgoingPacket], now: MonotonicTime,
                             into batch: inout DatagramBatch) -> TransportPath? {
        guard state == .connected, srtp != nil, let remotePath else { return nil }
        let negotiated = configuration.negotiated
        for (index, packet) in packets.enumerated() {
            switch packet.kind {
            case .video:
                guard negotiated.video != nil else { continue }
                // One layer at a time, switched at the target layer's keyframe, renumbered (issue 24).
                let (sequence, timestamp) = RTPFixedHeader.sequenceNumberAndTimestamp(ofPacket: packet.bytes)
                guard let rewritten = videoLayers.accept(layer: packet.layer, sequenceNumber: sequence, timestamp: timestamp,
                                                         startsKeyframe: packet.startsKeyframe,
                                                         restartsOnlyAtKeyframe: !sentVideoKeyframe) else { continue }
                var packet = packet
                packet.sequenceNumber = rewritten.sequenceNumber
                packet.timestampShift = rewritten.timestampShift
                if packet.startsKeyframe { sentVideoKeyframe = true }
                if packet.startsKeyframe {
                    let bytes = packets[index...].reduce(0) { $0 + ($1.kind == .video ? $1.bytes.count + Self.wireOverhead : 0) }
                    keyframeQueued(bytes: bytes, now: now)
                }
                rememberForProbes(packet)
                pacer.enqueue(.media(packet), bytes: packet.bytes.count + Self.wireOverhead, priority: .video, at: now)
            case .audio:
                guard negotiated.audio != nil else { continue }
                pacer.enqueue(.media(packet), bytes: packet.bytes.count + Self.wireOverhead, priority: .audio, at: now)
            }
        }
        sendDue(now: now, into: &batch)
        return remotePath
    }

    /// What the pacer lets go at `now` (called at the session's deadline, after `handle(.timeout)`),
    /// appended to `batch`; nil before the session is connected.
    public func protectDueMedia(now: MonotonicTime, into batch: inout DatagramBatch) -> TransportPath? {
        guard state == .connected, srtp != nil, let remotePath else { return nil }
        sendDue(now: now, into: &batch)
        return remotePath
    }

    private func rememberForProbes(_ packet: OutgoingPacket) {
        if recentVideo.count < 32 {
            recentVideo.append(packet)
        } else {
            recentVideo[recentVideoNext] = packet
            recentVideoNext = (recentVideoNext + 1) % recentVideo.count
        }
    }

    /// One shared packet for this viewer: the payload type patched and its header extensions
    /// inserted in the copy SRTP encrypts in place (the shared bytes stay as they are), appended to
    /// `batch`, recorded for the estimator and the Sender Reports.
    func protectAndAppend(_ packet: OutgoingPacket, now: MonotonicTime, into batch: inout DatagramBatch) {
        guard let srtp else { return }
        let negotiated = configuration.negotiated
        let payloadType: UInt8
        let extensions: SendHeaderExtensions
        switch packet.kind {
        case .video:
            guard let video = negotiated.video else { return }
            payloadType = video.payloadType
            extensions = videoExtensions
        case .audio:
            guard let audio = negotiated.audio else { return }
            payloadType = audio.payloadType
            extensions = audioExtensions
        }
        let transportSequence = extensions.transportSequenceNumberID == nil ? nil : nextTransportSequenceNumber()
        extensions.write(into: &extensionBlock, transportSequenceNumber: transportSequence,
                         sendTimeNanoseconds: now.nanoseconds, playoutDelay: packet.kind == .video,
                         absoluteCaptureTime: absoluteCaptureTimeIfDue(packet, extensions: extensions))
        let before = batch.storage.count
        do {
            try batch.append { (storage: inout [UInt8]) throws(SRTPError) in
                try srtp.protectRTP(packet.bytes, headerExtension: extensionBlock, appendingTo: &storage) { header in
                    RTPFixedHeader.setPayloadType(payloadType, in: header)
                    if packet.kind == .video {
                        RTPFixedHeader.setSequenceNumber(packet.sequenceNumber, shiftingTimestampBy: packet.timestampShift,
                                                         in: header)
                    }
                }
            }
        } catch {
            statistics.srtpProtectFailures += 1
            return
        }
        let sent = batch.storage.count - before
        statistics.bytesSent += sent
        if let transportSequence {
            bandwidth?.packetSent(transportSequenceNumber: transportSequence, bytes: sent + 28, kind: .media, at: now)
        }
        let payloadOctets = UInt32(truncatingIfNeeded: RTPFixedHeader.payloadSize(ofPacket: packet.bytes))
        if packet.kind == .video {
            statistics.videoPacketsSent += 1
            videoPacketCount &+= 1
            videoOctetsSent &+= payloadOctets
        } else {
            statistics.audioPacketsSent += 1
            audioPacketCount &+= 1
            audioOctetsSent &+= payloadOctets
        }
    }

    /// A packet outside the shared path (a resend, a probe) protected with this viewer's video
    /// header extensions, its transport-wide sequence number recorded as `kind`.
    func protectWithExtensions(_ packet: [UInt8], video: Bool, kind: SentPacketKind, now: MonotonicTime) -> [UInt8]? {
        guard let srtp else { return nil }
        let extensions = video ? videoExtensions : audioExtensions
        let transportSequence = extensions.transportSequenceNumberID == nil ? nil : nextTransportSequenceNumber()
        extensions.write(into: &extensionBlock, transportSequenceNumber: transportSequence,
                         sendTimeNanoseconds: now.nanoseconds, playoutDelay: false)
        var protected: [UInt8] = []
        do {
            try srtp.protectRTP(packet, headerExtension: extensionBlock, appendingTo: &protected) { _ in }
        } catch {
            statistics.srtpProtectFailures += 1
            return nil
        }
        if let transportSequence {
            bandwidth?.packetSent(transportSequenceNumber: transportSequence, bytes: protected.count + 28, kind: kind, at: now)
        }
        return protected
    }

    /// The packet's capture time in NTP when abs-capture-time was answered, a second has passed on
    /// this stream since it last carried one (or none has) and the packet has room for it.
    private func absoluteCaptureTimeIfDue(_ packet: OutgoingPacket, extensions: SendHeaderExtensions) -> UInt64? {
        guard extensions.absoluteCaptureTimeID != nil,
              SendHeaderExtensions.fitsAbsoluteCaptureTime(packetBytes: packet.bytes.count) else { return nil }
        let last = packet.kind == .video ? videoCaptureTimeSentAt : audioCaptureTimeSentAt
        if let last, packet.captureTime >= last, packet.captureTime - last < .seconds(1) { return nil }
        if packet.kind == .video { videoCaptureTimeSentAt = packet.captureTime } else { audioCaptureTimeSentAt = packet.captureTime }
        return ntpTime(at: packet.captureTime).value
    }

    /// `original` (its payload type already this viewer's) as an RTX packet on `rtxSSRC` with the
    /// next RTX sequence number, which advances only when a packet was made: resends and probes
    /// share one gapless series, so the viewer's RTX loss figures stay true.
    func wrapForRTX(_ original: [UInt8], rtxPayloadType: UInt8, rtxSSRC: UInt32) -> [UInt8]? {
        guard let wrapped = RTXPacket.wrap(original: original, rtxPayloadType: rtxPayloadType, rtxSSRC: rtxSSRC,
                                           rtxSequenceNumber: rtxSequence) else { return nil }
        rtxSequence &+= 1
        return wrapped
    }

    /// The extensions written on one stream: the transport-wide sequence number where the extension
    /// was answered and the viewer sends transport-cc feedback (an id without the feedback would cost
    /// 4 bytes a packet for nothing), abs-send-time, for video playout-delay 0 (live: show at once),
    /// and abs-capture-time where answered.
    private static func sendExtensions(_ ids: [String: UInt8], transportCC: Bool, video: Bool) -> SendHeaderExtensions {
        SendHeaderExtensions(
            transportSequenceNumberID: transportCC ? ids[RTPHeaderExtensionURI.transportWideCC] : nil,
            absoluteSendTimeID: ids[RTPHeaderExtensionURI.absSendTime],
            playoutDelayID: video ? ids[RTPHeaderExtensionURI.playoutDelay] : nil,
            absoluteCaptureTimeID: ids[RTPHeaderExtensionURI.absCaptureTime])
    }

    private func nextTransportSequenceNumber() -> UInt16 {
        defer { transportSequenceNumber &+= 1 }
        return transportSequenceNumber
    }

    /// The ICE-TCP connection on `path` closed: its candidate pair failed (a selected one loses
    /// consent unless the viewer nominates another).
    public func transportClosed(_ path: TransportPath) {
        guard path.base == .tcp else { return }
        ice.tcpConnectionClosed(remote: path.remote)
    }

    /// ICE restart (RFC 8445 §9, RFC 9725 §4.3.2): new credentials on both sides; checks start over
    /// while DTLS and SRTP carry on, and media keeps going to the last address until a new one is
    /// nominated.
    public func restartICE(local: ICECredentials, remote: ICECredentials, now: MonotonicTime) {
        guard !state.isFinished else { return }
        localICE = local
        ice.restart(local: local, remote: remote, now: now)
    }

    /// Remote candidates (a=candidate values, RFC 8839 §5.1) from the offer or trickled by WHEP PATCH
    /// (RFC 8840): the full agent checks them; the lite one learns addresses from checks only. The
    /// PATCH is as authenticated as the offer (the session's URL), so a trickled candidate's IP may
    /// send checks from now on. mDNS names and candidates rtcam cannot use are passed over.
    public func addRemoteCandidates(_ values: [String], endOfCandidates: Bool, now: MonotonicTime) {
        guard !state.isFinished, case .full = ice else { return }
        for value in values {
            guard case let .candidate(candidate) = ICECandidate.parse(sdpValue: value) else { continue }
            if allowedRemoteIPs != nil {
                allowedRemoteIPs?.insert(candidate.address.ip)
                ice.allowRemoteIP(candidate.address.ip)
            }
            apply(ice.addRemoteCandidate(candidate, now: now), now: now)
        }
        if endOfCandidates { ice.endOfRemoteCandidates() }
    }

    /// The pair the full agent selected (candidate types, round trip); nil for ICE-lite.
    public var selectedICEPair: ICESelectedPair? { ice.selectedPair }

    /// Whether video has started for this viewer (false until the first keyframe was sent to it).
    public var hasSentKeyframe: Bool { sentVideoKeyframe }

    /// The video layer this viewer is on (nil: no video sent yet) and the one its owner wants it on
    /// (issue 24): a change takes effect at the next keyframe of the wanted layer, which the owner
    /// asks that layer's encoder for.
    public var videoLayer: VideoLayer? { videoLayers.current }
    public var wantedVideoLayer: VideoLayer {
        get { videoLayers.target }
        set { videoLayers.target = newValue }
    }
    /// The viewer waits for the wanted layer's keyframe: its first one, or one to switch at.
    public var waitsForKeyframeOfWantedLayer: Bool { !sentVideoKeyframe || videoLayers.isSwitching }
    public var videoLayerSwitches: Int { videoLayers.switches }

    /// Ends the session: RTCP BYE (RFC 3550 §6.6) and DTLS close_notify.
    public func close(now: MonotonicTime, media: MediaPacketizer) {
        guard !state.isFinished else { return }
        if state == .connected, let srtp, let remotePath {
            let bye = RTCPPacket.goodbye(ssrcs: [media.videoSSRC, media.audioSSRC], reason: nil).serialized()
            if let protected = protectCounting({ () throws(SRTPError) in try srtp.protectRTCP(bye) }) {
                outputs.append(.transmit(protected, on: remotePath))
            }
        }
        if let dtls {
            dtls.close()
            drainDTLS()
        }
        state = .closed
    }

    // MARK: - Output

    /// Everything the session has to do after the last input, in order: datagrams to transmit and
    /// events, then always one `.timeout` with when to call `handle(.timeout)` next. Appended to the
    /// caller's array, which it reuses, so a call allocates nothing in the steady state. The one way
    /// outputs leave a session: the daemon, the tests and the benchmarks all take them here (media,
    /// batched per frame, leaves through `protectMedia`).
    public func drainOutputs(into drained: inout [PeerSessionOutput]) {
        drained.append(contentsOf: outputs)
        outputs.removeAll(keepingCapacity: true)
        drained.append(.timeout(nextDeadline))
    }

    /// Whether outputs wait for `drainOutputs` (a caller that acted on events, e.g. answered a
    /// data channel message, drains again).
    public var hasPendingOutputs: Bool { !outputs.isEmpty }

    /// When the session next needs `handle(.timeout)` (also the last output of `drainOutputs`).
    public var nextDeadline: MonotonicTime? {
        guard !state.isFinished else { return nil }
        let dtlsDeadline = dtls.flatMap { $0.isConnected ? nil : $0.nextDeadline }
        let pacing = state == .connected ? pacer.nextSendTime : nil
        let estimating = state == .connected ? bandwidth?.nextDeadline : nil
        return earliest(ice.nextDeadline, dtlsDeadline, nextSenderReport, connectDeadline, dataChannelDeadline,
                        pacing, estimating)
    }

    // MARK: - Receive path

    private func receive(_ datagram: [UInt8], on path: TransportPath, now: MonotonicTime, media: MediaPacketizer) {
        guard !state.isFinished else { return }
        switch DatagramKind(classifying: datagram) {
        case .stun:
            if let allowed = allowedRemoteIPs, !allowed.contains(path.remote.ip) {
                statistics.checksFromForeignAddresses += 1   // not answered: ICE looks for another pair
                return
            }
            apply(ice.receive(datagram, on: path, now: now), now: now)
        case .dtls:
            guard checkedPaths.contains(path) else { statistics.rejectedDatagrams += 1; return }
            guard let dtls else {
                // The endpoint was retired after the handshake. What a peer sends then is a
                // close_notify or a retransmission we no longer need; without the record keys
                // neither can be authenticated, and an unauthenticated alert must not end a
                // session (anyone who can spoof the viewer's address could send one). The viewer
                // leaves by RTCP BYE (authenticated), WHEP DELETE, or consent expiry (RFC 7675).
                statistics.ignoredDTLSAfterHandshake += 1
                return
            }
            dtls.receive(datagram, now: now)
            drainDTLS(now: now)
        case .rtcp:
            guard checkedPaths.contains(path), let srtp else { statistics.rejectedDatagrams += 1; return }
            do {
                let plain = try srtp.unprotectRTCP(datagram)
                // Authenticated SRTCP proves the peer has its keys, so its side of the handshake
                // is over and it will not retransmit its last flight (RFC 6347 §4.2.4).
                if dtls != nil { retireDTLSPending = true }
                let packets = try RTCPPacket.parseCompound(plain)
                for packet in packets { handleRTCP(packet, now: now, media: media) }
            } catch {
                statistics.srtcpFailures += 1
            }
        case .rtp:
            // Only a viewer whose audio was answered sendrecv may send media (talkback, issue 17);
            // a recvonly viewer sends none.
            guard let audio = configuration.negotiated.audio, audio.receive, checkedPaths.contains(path),
                  let srtp else { statistics.rejectedDatagrams += 1; return }
            let plain: [UInt8]
            do {
                plain = try srtp.unprotectRTP(datagram)
            } catch {
                statistics.srtpUnprotectFailures += 1
                return
            }
            guard let packet = ReceivedAudioPacket.parse(plain, payloadType: audio.payloadType, arrival: now) else {
                statistics.rejectedDatagrams += 1
                return
            }
            statistics.audioPacketsReceived += 1
            if talkerStatistics?.ssrc != packet.ssrc {
                talkerStatistics = ReceiveStatistics(ssrc: packet.ssrc, clockRate: 48_000)
            }
            talkerStatistics?.packetReceived(sequenceNumber: packet.sequenceNumber, rtpTimestamp: packet.timestamp, arrival: now)
            outputs.append(.event(.audioReceived(packet)))
        case .unknown:
            statistics.rejectedDatagrams += 1
        }
    }

    private func apply(_ actions: [ICEAction], now: MonotonicTime) {
        for action in actions {
            switch action {
            case let .send(bytes, path):
                outputs.append(.transmit(bytes, on: path))
            case let .checked(path):
                remember(path)
                if remotePath == nil { remotePath = path }
            case let .selected(path):
                remember(path)
                remotePath = path
                outputs.append(.event(.iceSelected(path)))
                if state == .checking { state = .securing }
                if dtlsRole == .client && !dtlsStarted {
                    // RFC 5763 §5: the DTLS client starts once ICE has a working pair.
                    dtlsStarted = true
                    dtls?.start(now: now)
                    drainDTLS(now: now)
                }
            case .consentLost:
                state = .disconnected
                outputs.append(.event(.disconnected(reason: "ICE consent lost: no valid check for 30 s (RFC 7675)")))
            case .rejected:
                statistics.rejectedDatagrams += 1
            }
        }
    }

    /// Keeps `path` as checked (most recent last), forgetting the oldest beyond the bound; never
    /// the one media goes to.
    private func remember(_ path: TransportPath) {
        if let index = checkedPaths.firstIndex(of: path) {
            checkedPaths.remove(at: index)
            checkedPaths.append(path)
            return
        }
        checkedPaths.append(path)
        outputs.append(.event(.addressVerified(path)))
        while checkedPaths.count > max(1, configuration.maximumCheckedAddresses),
              let index = checkedPaths.firstIndex(where: { $0 != remotePath }) {
            outputs.append(.event(.addressForgotten(checkedPaths.remove(at: index))))
        }
    }

    /// Whether the DTLS endpoint is still held (false once it was released after the handshake).
    public var holdsDTLSEndpoint: Bool { dtls != nil }

    /// Frees the DTLS endpoint once the handshake is over on both sides: we are the client and
    /// hold the server's Finished, or we are the server and the peer sent authenticated SRTCP.
    /// Before that the server must keep it to answer a retransmitted final flight (RFC 6347
    /// §4.2.4). Afterwards SRTP carries on alone (RFC 5764 §4.2: keys exported once); the
    /// session can no longer send close_notify and ends with RTCP BYE instead, and DTLS records
    /// from the peer are counted and ignored.
    private func retireDTLS() {
        retireDTLSPending = false
        // Data channels run over DTLS records for the whole session: the endpoint stays.
        guard dataChannels == nil, state == .connected, let dtls, dtls.isConnected else { return }
        drainDTLS()
        self.dtls = nil
    }

    /// The DTLS endpoint while it is held (data channels send through it).
    var dtlsEndpoint: DTLSEndpoint? { dtls }

    /// Queues an event (data channels report through it).
    func emit(_ event: PeerSessionEvent) { outputs.append(.event(event)) }

    func drainDTLS(now: MonotonicTime? = nil) {
        guard let dtls else { return }
        while let datagram = dtls.pollTransmit() {
            if let remotePath { outputs.append(.transmit(datagram, on: remotePath)) }
        }
        while let event = dtls.pollEvent() {
            switch event {
            case let .connected(keys):
                do {
                    srtp = try SRTPSession(keys: keys, isClient: dtlsRole == .client)
                    state = .connected
                    connectDeadline = nil
                    // A client received the server's final flight: the server is done too.
                    if dtlsRole == .client { retireDTLSPending = true }
                    if let now { nextSenderReport = now + .milliseconds(200) }
                    outputs.append(.event(.connected(keys.profile)))
                    if let now { startDataChannels(now: now) }
                } catch {
                    state = .failed
                    outputs.append(.event(.failed(reason: "SRTP setup failed: \(error)")))
                }
            case let .failed(error):
                state = .failed
                outputs.append(.event(.failed(reason: "DTLS: \(error)")))
            case .closed:
                state = .closed
                outputs.append(.event(.closed))
            case let .applicationData(packet):
                // One record, one SCTP packet (RFC 8261 §4); without data channels, ignored.
                if let now { receiveSCTP(packet, now: now) }
            }
        }
    }

    private func handleRTCP(_ packet: RTCPPacket, now: MonotonicTime, media: MediaPacketizer) {
        switch packet {
        case let .receiverReport(report):
            for block in report.reportBlocks { absorb(block, now: now, media: media) }
        case let .senderReport(report):
            for block in report.reportBlocks { absorb(block, now: now, media: media) }
            if report.ssrc == talkerStatistics?.ssrc {
                talkerStatistics?.senderReportReceived(ntp: report.ntpTimestamp, arrival: now)
            }
        case let .genericNACK(nack):
            guard nack.mediaSSRC == media.videoSSRC else { return }
            retransmit(nack.lostSequenceNumbers, media: media, now: now)
        case .pictureLossIndication:
            statistics.keyframeRequests += 1
            outputs.append(.event(.keyframeRequested))
        case let .fullIntraRequest(fir):
            // RFC 5104 §4.3.1.2: a repeated command sequence number is the same request again.
            for entry in fir.entries where entry.ssrc == media.videoSSRC {
                if lastFIRSequenceNumber != entry.sequenceNumber {
                    lastFIRSequenceNumber = entry.sequenceNumber
                    statistics.keyframeRequests += 1
                    outputs.append(.event(.keyframeRequested))
                }
            }
        case let .receiverEstimatedMaxBitrate(remb):
            statistics.lastBitrateEstimate = remb.bitrate
            bandwidth?.receiverEstimatedMaximum(bitsPerSecond: Int(clamping: remb.bitrate), at: now)
            bandwidthUpdated(now: now)
        case let .transportCC(feedback):
            bandwidth?.transportFeedback(feedback, at: now)
            bandwidthUpdated(now: now)
        case let .goodbye(ssrcs, _):
            if !ssrcs.isEmpty {
                state = .closed
                outputs.append(.event(.closed))
            }
        case .sourceDescription, .other:
            break
        }
    }

    /// RFC 3550 §6.4.1: round-trip time from LSR/DLSR, and the loss the viewer saw.
    private func absorb(_ block: ReportBlock, now: MonotonicTime, media: MediaPacketizer) {
        guard block.ssrc == media.videoSSRC || block.ssrc == media.audioSSRC else { return }
        if block.ssrc == media.videoSSRC {
            statistics.fractionLost = Double(block.fractionLost) / 256
            statistics.cumulativeLost = block.cumulativeLost
        }
        let roundTripTime = block.roundTripTime(arrival: ntpTime(at: now))
        if let roundTripTime {
            statistics.roundTripTime = roundTripTime
        }
        if block.ssrc == media.videoSSRC, bandwidth != nil {
            bandwidth?.receiverReport(fractionLost: Double(block.fractionLost) / 256, roundTripTime: roundTripTime, at: now)
            bandwidthUpdated(now: now)
        }
    }

    /// RFC 4585 §6.2.1 NACK → resend from the shared history, as RTX when negotiated (RFC 4588 §4).
    /// Bounded: a sequence number named twice counts once, each packet is resent at most
    /// `maximumRetransmissionsPerPacket` times, and resends stay within `retransmissionBudgetShare`
    /// of what the viewer was sent over the last second (one NACK may name thousands of packets).
    private func retransmit(_ sequenceNumbers: [UInt16], media: MediaPacketizer, now: MonotonicTime) {
        guard state == .connected, srtp != nil, remotePath != nil, let video = configuration.negotiated.video,
              video.nack else { return }
        var seen = Set<UInt16>()
        budgetWindow.advance(to: now, sentBytes: statistics.bytesSent)
        nackedShare.advance(to: now, videoPacketsSent: statistics.videoPacketsSent)
        // A resend is still on its way for a round trip: a NACK naming the packet again sooner (the
        // viewer asks again after its own estimate, which stalls and jitter make short) is not
        // answered, as libwebrtc's sender does not (at most 250 ms: a stall must not make a lost
        // resend wait long).
        // The round trip is the larger of what receiver reports say and what transport-cc feedback
        // measures: reports are sparse and miss a queue that just built up (issue 24).
        // The latest feedback's round trip too: the smoothed one lags a queue that builds in a
        // fraction of a second after a rate step, and resends answered too soon only fill it.
        let roundTrip = max(statistics.roundTripTime ?? .zero, bandwidth?.roundTripTime ?? .zero,
                            bandwidth?.latestFeedbackRoundTripTime ?? .zero)
        let inFlight = min(roundTrip, .milliseconds(250))
        // Copies may use the budget the first resends leave. At a NACKed share L with c copies a
        // resend, first resends are L of the media and all resends c × L, so of all bytes sent the
        // first resends take L / (1 + c × L); copies stop where that would no longer fit. (A
        // receiver report's fraction lost is no measure of L: Chromium puts one before every NACK,
        // each over a few packets, and says 0.3 to 0.7 at 10 % loss.) Half the budget for copies,
        // as before, was less than three copies cost at 10 % loss whenever a second's loss ran
        // above average, e.g. over a keyframe: those resends went out once, and a lost one waited
        // for the viewer's next NACK (a ~200 ms freeze in Chromium at 50 ms RTT).
        // Resends wait in the pacer: a second of its rate is what they can take at most. After a rate
        // step the link's queue drops a burst that is more than half of what the lower rate sends
        // in a second; each packet not resent stalls the picture until a keyframe (issue 24).
        let budgetFloor = congestion.isDraining ? pacer.pacingBitsPerSecond / 8 : 65_536
        let loss = nackedShare.share
        let copyShare = max(0, configuration.retransmissionBudgetShare - loss / (1 + Double(maximumCopies) * loss))
        for sequence in sequenceNumbers {
            statistics.nackedPackets += 1
            let previous = retransmissions[sequence]
            if previous == nil, !seen.contains(sequence) { nackedShare.nackedForTheFirstTime() }
            guard seen.insert(sequence).inserted else {
                statistics.retransmissionsRefused += 1
                continue
            }
            // A resend still waiting in the pacer answers this NACK too.
            if queuedResends[sequence] != nil || previous.map({ now - $0.last < inFlight }) == true {
                statistics.retransmissionsInFlight += 1
                continue
            }
            guard (previous?.count ?? 0) < configuration.maximumRetransmissionsPerPacket,
                  budgetWindow.allows(share: configuration.retransmissionBudgetShare, floorBytes: budgetFloor) else {
                statistics.retransmissionsRefused += 1
                continue
            }
            // The viewer's number → the layer and its number (they differ after a layer switch).
            guard let source = videoLayers.original(of: sequence),
                  var original = media.videoHistory(of: source.layer).packet(sequenceNumber: source.sequenceNumber) else {
                statistics.retransmissionsMissingFromHistory += 1
                continue
            }
            RTPFixedHeader.setPayloadType(video.payloadType, in: &original)
            RTPFixedHeader.setSequenceNumber(sequence, shiftingTimestampBy: source.timestampShift, in: &original)
            var queued = 0
            // Copies for a packet's first resend only, and only while resends stay within what the
            // first resends at this loss leave of the budget (copyShare).
            let wanted = video.rtxPayloadType == nil || previous != nil ? 1 : copiesForFirstResend()
            let bytes = original.count + (video.rtxPayloadType == nil ? 0 : 2) + Self.wireOverhead
            for copy in 0 ..< wanted {
                if copy > 0, !budgetWindow.allows(share: copyShare) {
                    statistics.redundantRetransmissionsWithheld += wanted - copy
                    break
                }
                pacer.enqueue(.resend(original: original, sequenceNumber: sequence, rtxSSRC: media.videoRTXSSRC),
                              bytes: bytes, priority: .retransmission, at: now)
                budgetWindow.resent(bytes: bytes)
                queued += 1
            }
            guard queued > 0 else { continue }
            queuedResends[sequence, default: 0] += queued
            // The history holds about a thousand packets: counts for older ones are no use.
            if retransmissions.count >= 4096 { retransmissions.removeAll(keepingCapacity: true) }
            if queuedResends.count >= 4096 { queuedResends.removeAll(keepingCapacity: true) }
            retransmissions[sequence] = ((previous?.count ?? 0) + 1, now)
            statistics.retransmittedPackets += 1
            statistics.redundantRetransmissions += queued - 1
        }
        // In a congestion episode resends leave at the link's rate, not the slower drain pace.
        if congestion.isDraining, pacer.queuedBytes(.retransmission) > 0 { updatePacing(now: now) }
    }

    /// A resend the pacer let go: wrapped as RTX (where negotiated) and protected now, so RTX
    /// sequence numbers and the transport-wide ones follow the order packets leave in. Its round
    /// trip (how long a NACK for it again goes unanswered) starts now, not when it was queued.
    func sendResend(_ original: [UInt8], sequenceNumber: UInt16, rtxSSRC: UInt32, now: MonotonicTime,
                    into batch: inout DatagramBatch) {
        if let left = queuedResends[sequenceNumber] {
            queuedResends[sequenceNumber] = left > 1 ? left - 1 : nil
        }
        if let resent = retransmissions[sequenceNumber] { retransmissions[sequenceNumber] = (resent.count, now) }
        guard let video = configuration.negotiated.video else { return }
        let packet: [UInt8]
        if let rtxPayloadType = video.rtxPayloadType {
            guard let wrapped = wrapForRTX(original, rtxPayloadType: rtxPayloadType, rtxSSRC: rtxSSRC) else { return }
            packet = wrapped
        } else {
            packet = original
        }
        guard let protected = protectWithExtensions(packet, video: true, kind: .retransmission, now: now) else { return }
        batch.append(protected)
        statistics.bytesSent += protected.count
    }

    /// How many copies of each resend the viewer's loss calls for: the larger of what its last
    /// receiver report said and the share of video packets it NACKed over the last second or two
    /// (libwebrtc counts packets recovered by RTX as received, so its reports understate the link's
    /// loss once resends work).
    private func copiesForFirstResend() -> Int {
        let loss = viewerLoss
        let wanted = configuration.redundantRetransmissions.first { loss >= $0.lossAtLeast }.map { max(1, $0.copies) } ?? 1
        // Loss from a queue that overflows (the estimator sees the delay grow) is cured by sending
        // less, not more: no extra copies then (issue 24).
        if wanted > 1, congested {
            statistics.redundantRetransmissionsHeldForCongestion += wanted - 1
            return 1
        }
        return wanted
    }

    /// Whether the estimator sees a queue (its delay detector overusing) or a link under half the
    /// start, measured by delay or REMB. Not the loss-based bound: random loss of 10 % keeps pushing
    /// that down (gcc-02 §6 cuts above 10 % and grows only under 2 %), and it fell under half the
    /// start within a minute on a link with no queue at all, which took the copies away exactly
    /// where they were needed (62 copies held in a 15 s window, freezes of 275 ms in Chromium).
    private var congested: Bool {
        guard let bandwidth else { return false }
        let diagnostics = bandwidth.diagnostics
        if diagnostics.usage == .overusing { return true }
        let measured = [diagnostics.delayBasedBitsPerSecond, diagnostics.rembBitsPerSecond].compactMap { $0 }.min()
        if bandwidthInformed, let measured, measured < configuration.bandwidth.startBitsPerSecond / 2 { return true }
        return false
    }

    private var maximumCopies: Int { configuration.redundantRetransmissions.map(\.copies).max() ?? 1 }

    /// The loss on the way to the viewer: the larger of what its last receiver report said and the
    /// share of video packets it NACKed over the last second or two.
    private var viewerLoss: Double { max(statistics.fractionLost, nackedShare.share) }

    // MARK: - Timers

    private func handleTimeout(now: MonotonicTime, media: MediaPacketizer) {
        guard !state.isFinished else { return }
        if let connectDeadline, now >= connectDeadline {
            let stage = state == .checking ? "ICE" : "DTLS"
            state = .failed
            outputs.append(.event(.failed(reason: "not connected within \(configuration.connectTimeout) (\(stage) unfinished)")))
            return
        }
        apply(ice.handleTimeout(now: now), now: now)
        if let dtls, !dtls.isConnected, let deadline = dtls.nextDeadline, deadline <= now {
            dtls.handleTimeout(now: now)
            drainDTLS(now: now)
        }
        if retireDTLSPending { retireDTLS() }
        if state == .connected { handleDataChannelTimeout(now: now) }
        if state == .connected, let deadline = bandwidth?.nextDeadline, deadline <= now {
            bandwidth?.handleTimeout(now: now)
            if bandwidthInformed { bandwidthUpdated(now: now) }
        }
        if let due = nextSenderReport, due <= now, state == .connected {
            sendSenderReports(now: now, media: media)
            // RFC 3550 §6.2: randomize the interval (0.5 to 1.5 of the nominal value).
            let nominal = configuration.senderReportInterval.nanosecondsClamped
            let jittered = nominal / 2 + Int64(senderReportJitter.next() % UInt64(max(1, nominal)))
            nextSenderReport = now + .nanoseconds(jittered)
        }
    }

    /// RFC 3550 §6.4.1 SR per sending stream, compounded with SDES CNAME (§6.5.1, §6.1).
    private func sendSenderReports(now: MonotonicTime, media: MediaPacketizer) {
        guard let srtp, let remotePath else { return }
        var reports: [RTCPPacket] = []
        let ntp = ntpTime(at: now).value
        if configuration.negotiated.video != nil, videoPacketCount > 0 {
            reports.append(.senderReport(SenderReport(
                ssrc: media.videoSSRC, ntpTimestamp: ntp, rtpTimestamp: media.rtpTimestamp(.video, at: now),
                packetCount: videoPacketCount, octetCount: videoOctetsSent, reportBlocks: [])))
        }
        if configuration.negotiated.audio != nil, audioPacketCount > 0 {
            reports.append(.senderReport(SenderReport(
                ssrc: media.audioSSRC, ntpTimestamp: ntp, rtpTimestamp: media.rtpTimestamp(.audio, at: now),
                packetCount: audioPacketCount, octetCount: audioOctetsSent, reportBlocks: [])))
        }
        // RFC 3550 §6.4: a report block about the talking viewer's audio, in the first SR, or in an
        // RR when rtcam has sent nothing yet.
        if var talker = talkerStatistics {
            let block = talker.reportBlock(now: now)
            talkerStatistics = talker
            if case var .senderReport(first)? = reports.first {
                first.reportBlocks.append(block)
                reports[0] = .senderReport(first)
            } else {
                reports.append(.receiverReport(ReceiverReport(ssrc: media.audioSSRC, reportBlocks: [block])))
            }
        }
        guard let first = reports.first else { return }
        let senderSSRC: UInt32
        switch first {
        case let .senderReport(sr): senderSSRC = sr.ssrc
        case let .receiverReport(rr): senderSSRC = rr.ssrc
        default: return
        }
        reports.append(.sourceDescription([SDESChunk(ssrc: senderSSRC, cname: configuration.cname)]))
        if let protected = protectCounting({ () throws(SRTPError) in try srtp.protectRTCP(RTCPPacket.compound(reports)) }) {
            outputs.append(.transmit(protected, on: remotePath))
        }
    }

    /// An SRTP protect whose failure (a packet libsrtp refuses, a key at its limit) is counted, not
    /// silently dropped.
    private func protectCounting(_ protect: () throws(SRTPError) -> [UInt8]) -> [UInt8]? {
        do {
            return try protect()
        } catch {
            statistics.srtpProtectFailures += 1
            return nil
        }
    }

    private func ntpTime(at time: MonotonicTime) -> NTPTime {
        NTPTime(monotonic: time, ntpNanosecondsAtMonotonicZero: configuration.ntpNanosecondsAtMonotonicZero)
    }
}

/// A running total (what was sent) and a count of events, each over the current one-second window
/// and the one before it, the previous window's figures weighing as much as the current one's; after
/// two seconds without an update both windows are forgotten.
struct TwoSecondWindows {
    private var windowStart: MonotonicTime?
    private var totalAtWindowStart = 0
    private var totalInWindow = 0
    private var totalInPreviousWindow = 0
    private var eventsInWindow = 0
    private var eventsInPreviousWindow = 0

    /// `total`: the running total now (packets or bytes sent since the start).
    mutating func advance(to now: MonotonicTime, total: Int) {
        guard let start = windowStart else {
            windowStart = now
            totalAtWindowStart = total
            return
        }
        totalInWindow = total - totalAtWindowStart
        if now - start >= .seconds(1) {
            let stale = now - start >= .seconds(2)
            totalInPreviousWindow = stale ? 0 : totalInWindow
            eventsInPreviousWindow = stale ? 0 : eventsInWindow
            windowStart = now
            totalAtWindowStart = total
            totalInWindow = 0
            eventsInWindow = 0
        }
    }

    mutating func count(_ events: Int) { eventsInWindow += events }

    /// Over both windows.
    var total: Int { totalInWindow + totalInPreviousWindow }
    var events: Int { eventsInWindow + eventsInPreviousWindow }
}

/// The share of the video packets sent that a viewer NACKed (each packet counted once), over the
/// current and the previous second: the loss on the way to it, as the sender sees it.
struct NACKedShare {
    private var windows = TwoSecondWindows()

    mutating func advance(to now: MonotonicTime, videoPacketsSent: Int) {
        windows.advance(to: now, total: videoPacketsSent)
    }

    mutating func nackedForTheFirstTime() { windows.count(1) }

    /// 0 until 50 packets were sent in the two windows (too few to tell a rate).
    var share: Double {
        guard windows.total >= 50 else { return 0 }
        return min(1, Double(windows.events) / Double(windows.total))
    }
}

/// What a viewer's resends may cost: at most a share of the bytes it was sent over the current and
/// the previous second.
struct RetransmissionBudget {
    private var windows = TwoSecondWindows()

    mutating func advance(to now: MonotonicTime, sentBytes: Int) {
        windows.advance(to: now, total: sentBytes)
    }

    /// Whether one more resend fits: resent bytes under `share` of the bytes sent, with a floor of
    /// 64 KB a second so a viewer that just joined can still recover a lost keyframe packet.
    func allows(share: Double, floorBytes: Int = 65_536) -> Bool {
        Double(windows.events) < max(Double(max(65_536, floorBytes)), Double(windows.total) * share)
    }

    mutating func resent(bytes: Int) {
        windows.count(bytes)
    }
}
