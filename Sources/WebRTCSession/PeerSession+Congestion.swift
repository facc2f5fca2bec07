import CongestionControl
import RTCBase
import RTP
import SRTP

/// What waits in a viewer's pacer: a shared media packet, or a recent video packet to resend as RTX
/// for a bandwidth probe (libwebrtc's "payload padding": a probe that carries something useful).
enum PacedPacket {
    case media(OutgoingPacket)
    case probe(OutgoingPacket, clusterID: Int)
    /// A NACKed video packet from the shared history (its payload type already this viewer's),
    /// resent as RTX where negotiated. Resends wait in the pacer ahead of video (issue 24): sent at
    /// once, past the pacer, they went into the link's full queue after a rate step and were lost
    /// there again, over and over, while the picture stood still.
    case resend(original: [UInt8], sequenceNumber: UInt16, rtxSSRC: UInt32)
}

/// Congestion control for one viewer (issue 24): every packet with a transport-wide sequence number
/// is recorded by the send-side estimator (CongestionControl), transport-cc feedback, receiver
/// reports and REMB go into it, media leaves through the viewer's pacer at its pacing rate, and the
/// hub reads the estimate to set the one encoder (EncoderBitratePolicy).
extension PeerSession {
    /// Bytes a packet takes on the wire beyond its plaintext: header extensions, SRTP tag, UDP/IP.
    static let wireOverhead = SendHeaderExtensions.maximumBlockSize + 16 + 8 + 20

    /// The estimate this viewer's link takes, bits/s (nil: the viewer sends neither transport-cc
    /// feedback nor REMB, so nothing is known and the encoder does not follow it).
    public var estimatedBitsPerSecond: Int? {
        guard let bandwidth, bandwidthInformed else { return nil }
        return congestion.encoderBitsPerSecond(target: bandwidth.targetBitsPerSecond, backlogBytes: mediaBacklogBytes)
    }

    /// Whether this viewer's link is in a congestion episode (CongestionResponse: the pacer drains
    /// what a rate step left at the link's rate): the hub holds the encoder's periodic IDR meanwhile.
    /// Surfaced with a `bitrateEstimate` event whenever it changes.
    public var isInCongestionEpisode: Bool { congestion.isDraining }

    /// Whether the video source follows the encoder rate asked of it (CongestionResponse.holdsVideo):
    /// a passthrough source does not, and its video is never held for a congested link.
    public var videoSourceFollowsEstimate: Bool {
        get { congestion.holdsVideo }
        set { congestion.holdsVideo = newValue }
    }

    /// The pacer's rate now, the link's queue the congestion response last saw, and what it takes
    /// off the encoder for a surplus coming into the pacer (debug log).
    public var pacing: (bitsPerSecond: Int, linkQueue: Duration?, inflowSurplusBitsPerSecond: Int, videoInBitsPerSecond: Int?) {
        (pacer.pacingBitsPerSecond, congestion.linkQueueDelay, Int(congestion.inflowSurplusBitsPerSecond), congestion.sourceBitsPerSecond())
    }

    /// Video and resends waiting in the pacer.
    var mediaBacklogBytes: Int { pacer.queuedBytes(.video) + pacer.queuedBytes(.retransmission) }

    public var bandwidthDiagnostics: BandwidthDiagnostics? { bandwidth?.diagnostics }

    /// Bytes waiting in the pacer, and how long the oldest has waited.
    public func pacerQueue(now: MonotonicTime) -> (bytes: Int, oldest: Duration?) {
        (pacer.queuedBytes, pacer.oldestQueuedAge(now: now))
    }

    /// Sends what the pacer lets go at `now` into `batch` (the media path's reused buffer).
    func sendDue(now: MonotonicTime, into batch: inout DatagramBatch) {
        startProbeIfDue(now: now)
        dropVideoBacklogIfStale(now: now)
        while let paced = pacer.dequeue(now: now) {
            switch paced {
            case let .media(packet):
                protectAndAppend(packet, now: now, into: &batch)
            case let .probe(packet, clusterID):
                sendProbe(packet, clusterID: clusterID, now: now, into: &batch)
            case let .resend(original, sequenceNumber, rtxSSRC):
                sendResend(original, sequenceNumber: sequenceNumber, rtxSSRC: rtxSSRC, now: now, into: &batch)
            }
        }
        // In a congestion episode the pacing follows the link's projected queue (it shortens as time
        // passes, not only when feedback comes) and whether resends wait; once the backlog the
        // congested link left is gone, pace (and encode) normally again, and the hub hears of it.
        if congestion.isDraining {
            updatePacing(now: now)
            if !congestion.isDraining { bandwidthUpdated(now: now) }
        }
    }

    /// A viewer whose link is below what the encoder sends (below the floor: EncoderBitratePolicy)
    /// would queue without end. Video that waited longer than `staleVideoAfter` is dropped and the
    /// viewer restarts at the next keyframe: it sees fewer pictures instead of later ones.
    private func dropVideoBacklogIfStale(now: MonotonicTime) {
        // A keyframe being paced out is let through whole (it is what the viewer restarts from).
        if let exempt = staleVideoExemptUntil, now < exempt { return }
        let limit = congestion.staleVideoLimit(normal: configuration.staleVideoAfter, now: now)
        guard let age = pacer.oldestQueuedAge(.video, now: now), age > limit else { return }
        let dropped = pacer.removeAll(.video)
        statistics.pacedVideoPacketsDropped += dropped
        sentVideoKeyframe = false
        // One keyframe asked for at most every few seconds: every viewer gets the keyframes a slow
        // one asks for, and they cost the fast ones bits.
        if lastStaleKeyframeRequest.map({ now - $0 >= configuration.staleKeyframeInterval }) ?? true {
            lastStaleKeyframeRequest = now
            outputs.append(.event(.keyframeRequested))
        }
    }

    /// A keyframe was queued (`bytes` in all): it may take as long as the pacer needs for it.
    func keyframeQueued(bytes: Int, now: MonotonicTime) {
        let seconds = Double(bytes) * 8 / Double(max(pacer.pacingBitsPerSecond, 1000))
        staleVideoExemptUntil = now + .nanoseconds(Int64(min(seconds, 10) * 1e9)) + configuration.staleVideoAfter
    }

    /// RTCP about the link went into the estimator: the pacer follows it, and the hub hears of a
    /// new estimate when it moved by 2 % or more.
    func bandwidthUpdated(now: MonotonicTime) {
        guard bandwidth != nil else { return }
        bandwidthInformed = true
        updatePacing(now: now)
        guard let target = estimatedBitsPerSecond else { return }
        // An episode's start and end are surfaced whatever the estimate did: the hub holds the
        // encoder's periodic IDR while one is on (KeyframeSchedule).
        let episodeChanged = congestion.isDraining != surfacedCongestionEpisode
        if !episodeChanged, let last = lastSurfacedEstimate, abs(Double(target - last)) < Double(last) * 0.02 { return }
        surfacedCongestionEpisode = congestion.isDraining
        lastSurfacedEstimate = target
        statistics.estimatedBitsPerSecond = target
        outputs.append(.event(.bitrateEstimate(bitsPerSecond: UInt64(target))))
    }

    /// The pacing rate from the estimate and, in a congestion episode, from the link's projected
    /// queue and whether resends wait (CongestionResponse).
    func updatePacing(now: MonotonicTime) {
        guard let bandwidth else { return }
        // 2.5 times the estimate, also while the estimator sees the queue grow: pacing at the estimate
        // then was tried (the link's queue drains sooner after a step) but a false overuse on a good
        // link (loopback, a loaded receiver) then holds every P-frame back by tens of milliseconds
        // (Chromium glass-to-glass p95 22.7 → 42.6 ms), and the step's freeze was no shorter within
        // the noise (1.3-2.7 s either way). Only in a congestion episode (a rate step) does the pacer
        // go slower: at the link's delivery rate, until its backlog is gone (CongestionResponse).
        congestion.update(congested: bandwidth.isCongested, deliveredBitsPerSecond: bandwidth.congestedDeliveryBitsPerSecond,
                          backlogBytes: mediaBacklogBytes, linkQueueDelay: bandwidth.projectedLinkQueueDelay(now: now),
                          videoBytesEnqueued: pacer.enqueuedBytes(.video), now: now)
        pacer.setRates(pacingBitsPerSecond: congestion.pacingBitsPerSecond(target: bandwidth.targetBitsPerSecond,
                                                                           normal: bandwidth.pacingBitsPerSecond,
                                                                           resendsWaiting: pacer.queuedBytes(.retransmission) > 0),
                       at: now)
    }

    /// A probe cluster the estimator asks for, sent as RTX copies of the latest video packets (only
    /// where RTX was negotiated: without it a copy would be an SRTP replay to the viewer).
    private func startProbeIfDue(now: MonotonicTime) {
        guard bandwidth != nil, !congestion.isDraining, configuration.negotiated.video?.rtxPayloadType != nil, !recentVideo.isEmpty,
              pacer.queuedBytes(.probe) == 0, let cluster = bandwidth?.takeProbeCluster(now: now) else { return }
        pacer.startProbe(bitsPerSecond: cluster.bitsPerSecond, at: now)
        var packets = 0
        var bytes = 0
        var index = recentVideo.count - 1
        while packets < cluster.minimumPackets || bytes < cluster.minimumBytes {
            let packet = recentVideo[index]
            let size = packet.bytes.count + 2 + Self.wireOverhead
            pacer.enqueue(.probe(packet, clusterID: cluster.id), bytes: size, priority: .probe, at: now)
            packets += 1
            bytes += size
            index = index == 0 ? recentVideo.count - 1 : index - 1
            if packets > 200 { break }
        }
        statistics.probeClusters += 1
    }

    private func sendProbe(_ packet: OutgoingPacket, clusterID: Int, now: MonotonicTime, into batch: inout DatagramBatch) {
        guard let video = configuration.negotiated.video, let rtxPayloadType = video.rtxPayloadType else { return }
        var original = packet.bytes
        RTPFixedHeader.setPayloadType(video.payloadType, in: &original)
        RTPFixedHeader.setSequenceNumber(packet.sequenceNumber, shiftingTimestampBy: packet.timestampShift, in: &original)
        guard let wrapped = wrapForRTX(original, rtxPayloadType: rtxPayloadType, rtxSSRC: rtxSSRCForProbes) else { return }
        guard let protected = protectWithExtensions(wrapped, video: true, kind: .probe(clusterID: clusterID), now: now)
        else { return }
        batch.append(protected)
        statistics.bytesSent += protected.count
        statistics.probePacketsSent += 1
    }
}
