import RTCBase
import RTP

@testable import CongestionControl

// A sender (30 fps video sized to the target with encoder lag, 20 ms audio, 1,150-byte packets through
// the pacer), a bottleneck link (a rate that can step, a drop-tail queue bounded in ms, propagation
// delay, random loss, cross traffic) and a receiver that answers with transport-wide feedback
// serialized to RTCP and parsed back; all on one virtual clock in nanoseconds.

/// The bottleneck: a FIFO served at `rate(at:)`, drop-tail when a packet would wait longer than
/// `queueLimit`, then `propagation` to the far end.
struct BottleneckLink {
    var rateSteps: [(at: Int64, bitsPerSecond: Double)]
    var queueLimit: Int64  // ns of waiting at which packets are dropped
    var propagation: Int64
    var lossProbability: Double
    var random: SeededRandom
    private(set) var freeAt: Int64 = 0
    private(set) var dropped = 0
    private(set) var randomlyLost = 0
    /// Random loss after the queue (as the interop tests' nft rule in the viewer's namespace, behind
    /// tbf): the lost packets used the link. Before it (the default), they never reach it.
    var lossAfterQueue = false
    /// Every packet the link carried: when it finished leaving the queue, and its size.
    private(set) var carried: [(at: Int64, bytes: Int)] = []

    init(rateSteps: [(at: Int64, bitsPerSecond: Double)], queueLimit: Int64, propagation: Int64,
         lossProbability: Double = 0, seed: UInt64 = 1) {
        self.rateSteps = rateSteps
        self.queueLimit = queueLimit
        self.propagation = propagation
        self.lossProbability = lossProbability
        random = SeededRandom(seed: seed)
    }

    func rate(at time: Int64) -> Double {
        var rate = rateSteps[0].bitsPerSecond
        for step in rateSteps where step.at <= time { rate = step.bitsPerSecond }
        return rate
    }

    /// The queueing delay a packet entering now would see.
    func queueDelay(at time: Int64) -> Int64 { max(0, freeAt - time) }

    /// When the packet reaches the far end, nil if lost or dropped.
    mutating func send(bytes: Int, at time: Int64, lossy: Bool = true) -> Int64? {
        if lossy, !lossAfterQueue, randomlyLoses() { return nil }
        let wait = queueDelay(at: time)
        if wait > queueLimit {
            dropped += 1
            return nil
        }
        let start = max(time, freeAt)
        let transmission = Int64(Double(bytes * 8) / rate(at: start) * 1e9)
        freeAt = start + transmission
        carried.append((freeAt, bytes))
        if lossy, lossAfterQueue, randomlyLoses() { return nil }
        return freeAt + propagation
    }

    private mutating func randomlyLoses() -> Bool {
        guard lossProbability > 0, Double(random.next() >> 11) / Double(1 << 53) < lossProbability else { return false }
        randomlyLost += 1
        return true
    }

    /// The share of the link's capacity used from `from` to `to` (everything it carried, lost after
    /// the queue or not, over its rate).
    func utilization(from: Int64, to: Int64) -> Double {
        let bits = Double(carried.filter { $0.at >= from && $0.at < to }.reduce(0) { $0 + $1.bytes }) * 8
        return bits / (rate(at: from) * Double(to - from) / 1e9)
    }
}

/// What the far end received, answered as transport-cc feedback every `interval`.
struct FeedbackReceiver {
    var clockOffset: Int64 = 7_777_000_000_000  // the remote clock has its own origin
    var mediaSSRC: UInt32 = 0x1234
    private var arrivals: [Int64: Int64] = [:]  // widened seq -> remote arrival ns
    private var unwrapper = SequenceUnwrapper()
    private var nextToReport: Int64?
    private var highestReceived: Int64?
    private var count: UInt8 = 0

    mutating func received(sequenceNumber: UInt16, at time: Int64) {
        let sequence = unwrapper.unwrap(sequenceNumber)
        if let next = nextToReport, sequence < next { return }  // already reported lost
        arrivals[sequence] = time + clockOffset
        highestReceived = max(highestReceived ?? sequence, sequence)
        if nextToReport == nil { nextToReport = sequence }
    }

    /// The feedback for everything since the last one, on the wire and back.
    mutating func feedback() -> [UInt8]? {
        guard let first = nextToReport, let last = highestReceived, last >= first else { return nil }
        let end = min(last, first + 0xFFFE)
        var reference: Int64?
        for sequence in first...end where arrivals[sequence] != nil {
            reference = arrivals[sequence]
            break
        }
        guard let reference else { return nil }
        let referenceTime = reference / 64_000_000  // 64 ms units
        var previous = referenceTime * 64_000_000
        var statuses: [TransportCCFeedback.PacketStatus] = []
        for sequence in first...end {
            if let arrival = arrivals[sequence] {
                let units = (arrival - previous) / 250_000
                let delta = Int16(clamping: units)
                previous += Int64(delta) * 250_000
                statuses.append(.init(sequenceNumber: UInt16(truncatingIfNeeded: sequence), receiveDelta: delta))
                arrivals[sequence] = nil
            } else {
                statuses.append(.init(sequenceNumber: UInt16(truncatingIfNeeded: sequence), receiveDelta: nil))
            }
        }
        nextToReport = end + 1
        let feedback = TransportCCFeedback(senderSSRC: 1, mediaSSRC: mediaSSRC,
                                           baseSequenceNumber: UInt16(truncatingIfNeeded: first),
                                           referenceTime: Int32(truncatingIfNeeded: referenceTime & 0xFF_FFFF),
                                           feedbackPacketCount: count, packets: statuses)
        count &+= 1
        return RTCPPacket.transportCC(feedback).serialized()
    }
}

/// Percentile of a sample (nearest rank).
func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    let rank = min(sorted.count - 1, max(0, Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1))
    return sorted[rank]
}

func kbps(_ bitsPerSecond: Double) -> String { "\(Int((bitsPerSecond / 1000).rounded())) kb/s" }
func seconds(_ ns: Int64) -> String {
    let tenths = (ns + 50_000_000) / 100_000_000
    return "\(tenths / 10).\(tenths % 10) s"
}

/// One viewer's whole loop: encoder → pacer → link → receiver → feedback → estimator.
struct CallSimulation {
    enum Packet {
        /// `sequence`: the media sequence number (the index into `mediaPackets`).
        case video(bytes: Int, sequence: Int)
        case audio
        case probe(cluster: Int, bytes: Int)
        /// A NACKed video packet sent again (as RTX).
        case resend(bytes: Int, sequence: Int)
    }

    /// How the sender reacts to a congested link (issue 24's rate step into a deep queue).
    enum CongestionHandling {
        /// Before: resends leave at once, past the pacer; the pacer paces at 2.5 × the estimate
        /// whatever happens.
        case none
        /// Resends wait in the pacer ahead of video; `CongestionResponse` paces at what the link
        /// delivers and holds the encoder under the estimate until the pacer's backlog is gone.
        case respond
    }

    struct Sample {
        var time: Int64
        var target: Int
        var queueDelay: Int64
        var oneWayDelay: Int64?
    }

    static let second: Int64 = 1_000_000_000
    static let millisecond: Int64 = 1_000_000
    static let packetBytes = 1150
    static let audioBytes = 120
    /// RTP/SRTP/UDP/IPv4 headers around each payload, counted on the link and by the estimator.
    static let overheadBytes = 40

    var now: Int64 = 1_000_000_000
    var estimator: SendSideBandwidthEstimator
    var pacer = Pacer<Packet>()
    var link: BottleneckLink
    var receiver = FeedbackReceiver()
    var feedbackInterval: Int64 = 75_000_000
    var useTransportFeedback = true
    /// Mangles feedback on its way back: return nil to lose it; may return garbage.
    var feedbackFilter: ((inout SeededRandom, [UInt8]) -> [[UInt8]])?
    var filterRandom = SeededRandom(seed: 99)
    /// A REMB value the receiver sends every second, if any (REMB-only peers).
    var rembSchedule: ((Int64) -> Int?)?
    /// Cross traffic through the same bottleneck, bits/s over time.
    var crossTraffic: ((Int64) -> Double)?

    private var transportSequence: UInt16 = 65_000  // wraps early on
    private var encoderTarget: Double
    private var nextFrame: Int64
    private var nextAudio: Int64
    private var nextFeedback: Int64
    private var nextREMB: Int64
    private var nextCross: Int64
    private var frameIndex = 0
    private var inFlight: [(arrival: Int64, sequence: UInt16, sent: Int64, isMedia: Bool, media: Int?)] = []
    private var feedbackInFlight: [(arrival: Int64, datagram: [UInt8])] = []
    private(set) var samples: [Sample] = []
    private(set) var mediaDelays: [(sent: Int64, delay: Int64)] = []
    private(set) var deliveredMediaBytes: [(time: Int64, bytes: Int)] = []
    private(set) var probesSent = 0
    private var nextSample: Int64 = 0
    private var pacerStalled = false
    private(set) var parseFailures = 0

    // Frames, NACK and RTX, and the receiver's picture (what Chromium would show).
    var congestionHandling = CongestionHandling.none
    /// Whether the receiver NACKs and the sender resends (off: the estimate alone is tested).
    var nacks = false
    /// Moments the receiver stalls (a loaded machine): what arrives meanwhile is timestamped when
    /// the stall ends, all at once.
    var receiverStalls: [(at: Int64, duration: Int64)] = []
    private var stalledArrivals: [(stamp: Int64, sequence: UInt16)] = []

    /// When the stall `time` falls in ends (nil: none).
    private func stallEnd(at time: Int64) -> Int64? {
        receiverStalls.first { time >= $0.at && time < $0.at + $0.duration }.map { $0.at + $0.duration }
    }
    var congestion = CongestionResponse()
    /// The encoder's periodic IDR (90 frames: 3 s); `holdsKeyframesWhileCongested` holds it while a
    /// congested link drains, as the daemon's x264 path does.
    var keyframes = KeyframeSchedule(interval: 90)
    var holdsKeyframesWhileCongested = true
    /// The pacing as the daemon does it: the link's queue projected from what was sent since the
    /// newest reported packet (else the newest reported packet's own), resends at the link's rate
    /// whatever its queue (else slowed like the rest). Off: stepfreeze2's, for comparison.
    var projectsLinkQueue = true
    var resendsAtLinkRate = true
    /// A source whose rate the estimate cannot change (an H.264 file or camera played as it is, the
    /// daemon's passthrough): frames of a fixed rate at `framesPerSecond`, an IDR `keyframeFactor`
    /// times a P-frame's size every `keyframeInterval` frames. Nil: the encoder follows the target.
    var passthrough: (bitsPerSecond: Int, framesPerSecond: Int, keyframeInterval: Int, keyframeFactor: Int)?
    /// The encoder makes this many times the rate it is asked for (x264's rate control is not
    /// exact: right after a cut it spends what its VBV buffer still holds).
    var encoderOvershoot = 1.0
    /// Copies queued for a packet's first resend (PeerSession sends up to three where the loss
    /// leaves the retransmission budget room), later resends once.
    var firstResendCopies = 1
    /// The pacer's video and resend backlog over time (bytes, sampled every 10 ms), and how long
    /// each video packet waited in the pacer (sent time, ns).
    private(set) var backlogSamples: [(time: Int64, bytes: Int)] = []
    private(set) var videoWaits: [(sent: Int64, wait: Int64)] = []
    /// Whether the sender takes its video source to follow the rate it asks for
    /// (`CongestionResponse.holdsVideo`, as PeerSession.videoSourceFollowsEstimate sets it). The
    /// daemon sets it false for a passthrough source (a file, a command's stream, an H.264
    /// camera's own): then no congestion episode holds its video in the pacer. True for every
    /// encoder, including one that ignores the bitrate it is asked for: CongestionResponse's
    /// `sourceFloor` finds that out from the pacer's input.
    var videoSourceFollowsEstimate: Bool {
        get { congestion.holdsVideo }
        set { congestion.holdsVideo = newValue }
    }
    /// The most bytes of video and resends the pacer held at once.
    private(set) var largestMediaBacklog = 0
    /// The receiver asks again for a packet still missing after this (Chromium: its RTT estimate,
    /// about 100 ms on a path it has no RTT for), at most `maximumNACKs` times.
    var nackInterval: Int64 = 100_000_000
    var maximumNACKs = 10
    /// Per media sequence number: its frame and size.
    private(set) var mediaPackets: [(frame: Int, bytes: Int)] = []
    private var mediaArrived: [Bool] = []
    /// Per frame: packets, packets arrived, keyframe, when it was rendered.
    private(set) var frames: [(packets: Int, arrived: Int, keyframe: Bool, rendered: Int64?)] = []
    private var nextFrameToRender = 0
    private var highestMediaArrived = -1
    private var missing: [Int: (lastNACK: Int64, count: Int)] = [:]
    private var nacksInFlight: [(arrival: Int64, sequences: [Int])] = []
    private var nextNACKCheck: Int64 = 0
    private var resends: [Int: (count: Int, last: Int64)] = [:]
    private var queuedResends: [Int: Int] = [:]
    private(set) var resendsSent = 0
    private(set) var resendsRefused = 0
    /// The longest any video packet waited in the pacer (the daemon drops video that waits past
    /// its stale limit and restarts the viewer at a keyframe).
    private(set) var longestVideoWait: Int64 = 0
    private var videoEnqueued: [Int: Int64] = [:]

    init(configuration: BandwidthEstimatorConfiguration, link: BottleneckLink) {
        estimator = SendSideBandwidthEstimator(configuration: configuration, now: MonotonicTime(nanoseconds: UInt64(now)))
        self.link = link
        encoderTarget = Double(configuration.startBitsPerSecond)
        nextFrame = now
        nextAudio = now
        nextFeedback = now + feedbackInterval
        nextREMB = now
        nextCross = now
        pacer.setRates(pacingBitsPerSecond: estimator.pacingBitsPerSecond, at: time(now))
    }

    func time(_ ns: Int64) -> MonotonicTime { MonotonicTime(nanoseconds: UInt64(ns)) }

    var target: Int { estimator.targetBitsPerSecond }

    /// Runs until `end` (ns on the simulation clock).
    mutating func run(until end: Int64) {
        while now < end {
            var next = min(nextFrame, nextAudio, nextFeedback, end)
            if rembSchedule != nil { next = min(next, nextREMB) }
            if crossTraffic != nil { next = min(next, nextCross) }
            if let send = pacer.nextSendTime {
                next = min(next, max(Int64(send.nanoseconds), pacerStalled ? now + 1000 : now))
            }
            if let deadline = estimator.nextDeadline { next = min(next, max(Int64(deadline.nanoseconds), now)) }
            if let arrival = inFlight.first?.arrival { next = min(next, arrival) }
            if let arrival = feedbackInFlight.map(\.arrival).min() { next = min(next, arrival) }
            if let arrival = nacksInFlight.map(\.arrival).min() { next = min(next, arrival) }
            if let stamp = stalledArrivals.first?.stamp { next = min(next, stamp) }
            if !missing.isEmpty { next = min(next, max(nextNACKCheck, now)) }
            now = max(now, next)
            step()
        }
    }

    private mutating func step() {
        let t = time(now)
        if now >= nextFrame { produceFrame() }
        if now >= nextAudio {
            pacer.enqueue(.audio, bytes: Self.audioBytes, priority: .audio, at: t)
            nextAudio += 20 * Self.millisecond
        }
        if let cross = crossTraffic, now >= nextCross {
            let rate = cross(now)
            if rate > 0 { _ = link.send(bytes: 1200, at: now, lossy: false) }
            nextCross += rate > 0 ? Int64(1200 * 8 / rate * 1e9) : 10 * Self.millisecond
        }
        // Packets leaving the pacer now.
        pacerStalled = false
        while let send = pacer.nextSendTime, Int64(send.nanoseconds) <= now {
            guard let packet = pacer.dequeue(now: t) else { pacerStalled = true; break }
            transmit(packet)
        }
        // Arrivals at the receiver.
        while let first = inFlight.first, first.arrival <= now {
            inFlight.removeFirst()
            if let end = stallEnd(at: first.arrival) {
                stalledArrivals.append((end, first.sequence))
            } else if useTransportFeedback {
                receiver.received(sequenceNumber: first.sequence, at: first.arrival)
            }
            if first.isMedia { mediaDelays.append((first.sent, first.arrival - first.sent)) }
            if let media = first.media { mediaArrived(media) }
        }
        if !missing.isEmpty, now >= nextNACKCheck {
            let due = missing.filter { now - $0.value.lastNACK >= nackInterval && $0.value.count < maximumNACKs }.map(\.key)
            for sequence in due { missing[sequence] = (now, missing[sequence]!.count + 1) }
            if !due.isEmpty, nacks { nacksInFlight.append((now + link.propagation, due.sorted())) }
            nextNACKCheck = now + 10 * Self.millisecond
        }
        var nackIndex = 0
        while nackIndex < nacksInFlight.count {
            if nacksInFlight[nackIndex].arrival <= now {
                senderReceivedNACK(nacksInFlight.remove(at: nackIndex).sequences)
            } else {
                nackIndex += 1
            }
        }
        while let stalled = stalledArrivals.first, stalled.stamp <= now {
            stalledArrivals.removeFirst()
            if useTransportFeedback { receiver.received(sequenceNumber: stalled.sequence, at: stalled.stamp) }
        }
        if now >= nextFeedback {
            nextFeedback += feedbackInterval
            // A stalled receiver sends no feedback either.
            if useTransportFeedback, stallEnd(at: now) == nil, let datagram = receiver.feedback() {
                let datagrams = feedbackFilter.map { $0(&filterRandom, datagram) } ?? [datagram]
                let propagation = link.propagation
                for (index, datagram) in datagrams.enumerated() {
                    feedbackInFlight.append((now + propagation + Int64(index), datagram))
                }
            }
        }
        if rembSchedule != nil, now >= nextREMB {
            nextREMB += Self.second
            if let value = rembSchedule?(now) {
                estimator.receiverEstimatedMaximum(bitsPerSecond: value, at: t)
            }
        }
        var index = 0
        while index < feedbackInFlight.count {
            if feedbackInFlight[index].arrival <= now {
                let datagram = feedbackInFlight.remove(at: index).datagram
                deliverFeedback(datagram)
            } else {
                index += 1
            }
        }
        if let deadline = estimator.nextDeadline, Int64(deadline.nanoseconds) <= now {
            estimator.handleTimeout(now: t)
        }
        // No probes while a congested link's backlog drains (PeerSession sends none then).
        while !(congestionHandling == .respond && congestion.isDraining), let cluster = estimator.takeProbeCluster(now: t) {
            let count = max(cluster.minimumPackets, (cluster.minimumBytes + Self.packetBytes - 1) / Self.packetBytes)
            pacer.startProbe(bitsPerSecond: cluster.bitsPerSecond, at: t)
            for _ in 0..<count { pacer.enqueue(.probe(cluster: cluster.id, bytes: Self.packetBytes), bytes: Self.packetBytes, priority: .probe, at: t) }
            probesSent += 1
        }
        updatePacingRate()
        if now >= nextSample {
            samples.append(Sample(time: now, target: estimator.targetBitsPerSecond, queueDelay: link.queueDelay(at: now),
                                  oneWayDelay: nil))
            backlogSamples.append((now, mediaBacklog))
            nextSample = now + 10 * Self.millisecond
        }
    }

    /// Frames made while a congested link's backlog drained, and the encoder's rate they were held
    /// under the estimate by then (bits/s, summed over those frames).
    private(set) var framesWhileDraining = 0
    private(set) var encoderHeldUnder = 0.0

    private mutating func produceFrame() {
        if congestionHandling == .respond, congestion.isDraining {
            framesWhileDraining += 1
            encoderHeldUnder += Double(estimator.targetBitsPerSecond - encoderFollows)
        }
        // Encoder lag: the encoder's rate follows the target with a 200 ms time constant.
        let dt = 1.0 / 30
        // The encoder gets the target less audio and packet overhead, as the daemon should set it
        // (less what the pacer holds while a congested link's backlog drains).
        let audio = Double((Self.audioBytes + Self.overheadBytes) * 8 * 50)
        let videoShare = max(Double(encoderFollows) - audio, 50_000) * Double(Self.packetBytes) / Double(Self.packetBytes + Self.overheadBytes)
        encoderTarget += (videoShare - encoderTarget) * min(1, dt / 0.2)
        var bytes = Int(encoderTarget * encoderOvershoot / 30 / 8)
        // A keyframe every 3 s (KeyframeSchedule: held while a congested link drains, if asked).
        let congested = holdsKeyframesWhileCongested && congestionHandling == .respond && congestion.isDraining
        var keyframe = keyframes.keyframeDue(congested: congested, now: time(now))
        if keyframe { bytes *= 3 }
        if let source = passthrough {
            // The group of pictures carries the fixed rate: (interval - 1) P-frames and one IDR.
            let groupBytes = source.bitsPerSecond / 8 * source.keyframeInterval / source.framesPerSecond
            let frameBytes = groupBytes / (source.keyframeInterval - 1 + source.keyframeFactor)
            keyframe = frameIndex % source.keyframeInterval == 0
            bytes = keyframe ? frameBytes * source.keyframeFactor : frameBytes
        }
        frameIndex += 1
        let frame = frames.count
        var packets = 0
        while bytes > 0 {
            let size = min(bytes, Self.packetBytes)
            let sequence = mediaPackets.count
            mediaPackets.append((frame, size))
            mediaArrived.append(false)
            videoEnqueued[sequence] = now
            pacer.enqueue(.video(bytes: size, sequence: sequence), bytes: size, priority: .video, at: time(now))
            bytes -= size
            packets += 1
        }
        frames.append((packets, 0, keyframe, nil))
        keyframes.pictureMade(isKeyframe: keyframe)
        largestMediaBacklog = max(largestMediaBacklog, mediaBacklog)
        nextFrame += Self.second / Int64(passthrough?.framesPerSecond ?? 30)
    }

    /// The rate the encoder follows: the estimate, or less while a congested link's backlog drains.
    private var encoderFollows: Int {
        guard congestionHandling == .respond else { return estimator.targetBitsPerSecond }
        return congestion.encoderBitsPerSecond(target: estimator.targetBitsPerSecond, backlogBytes: mediaBacklog)
    }

    private var mediaBacklog: Int { pacer.queuedBytes(.video) + pacer.queuedBytes(.retransmission) }

    private mutating func updatePacingRate() {
        let t = time(now)
        guard congestionHandling == .respond else {
            pacer.setRates(pacingBitsPerSecond: estimator.pacingBitsPerSecond, at: t)
            return
        }
        congestion.update(congested: estimator.isCongested, deliveredBitsPerSecond: estimator.congestedDeliveryBitsPerSecond,
                          backlogBytes: mediaBacklog,
                          linkQueueDelay: projectsLinkQueue ? estimator.projectedLinkQueueDelay(now: t) : estimator.linkQueueDelay,
                          videoBytesEnqueued: pacer.enqueuedBytes(.video), now: t)
        pacer.setRates(pacingBitsPerSecond: congestion.pacingBitsPerSecond(
            target: estimator.targetBitsPerSecond, normal: estimator.pacingBitsPerSecond,
            resendsWaiting: resendsAtLinkRate && pacer.queuedBytes(.retransmission) > 0), at: t)
    }

    // MARK: Receiver: frames, NACKs, the picture

    private mutating func mediaArrived(_ sequence: Int) {
        guard !mediaArrived[sequence] else { return }
        mediaArrived[sequence] = true
        missing[sequence] = nil
        if sequence > highestMediaArrived + 1 {
            // A gap: NACK what is missing at once (RFC 4585 §6.2.1), as Chromium does.
            let gap = Array((highestMediaArrived + 1)..<sequence).filter { !mediaArrived[$0] }
            for lost in gap { missing[lost] = (now, 1) }
            if !gap.isEmpty, nacks { nacksInFlight.append((now + link.propagation, gap)) }
        }
        highestMediaArrived = max(highestMediaArrived, sequence)
        let frame = mediaPackets[sequence].frame
        frames[frame].arrived += 1
        render()
    }

    /// Frames decode in order once complete (each references the one before); a complete keyframe
    /// past a frame that will never complete starts the picture again.
    private mutating func render() {
        if nextFrameToRender < frames.count, frames[nextFrameToRender].arrived < frames[nextFrameToRender].packets,
           let key = frames.indices.last(where: { $0 > nextFrameToRender && frames[$0].keyframe && frames[$0].arrived == frames[$0].packets }) {
            nextFrameToRender = key
        }
        while nextFrameToRender < frames.count, frames[nextFrameToRender].arrived == frames[nextFrameToRender].packets {
            frames[nextFrameToRender].rendered = now
            nextFrameToRender += 1
        }
    }

    /// The sender's answer to a NACK, as PeerSession gives it: a packet not resent while a resend
    /// is queued or within the round trip of the last (at most 250 ms), at most 6 times.
    private mutating func senderReceivedNACK(_ sequences: [Int]) {
        let roundTrip = max(estimator.roundTripTime ?? .zero, estimator.latestFeedbackRoundTripTime ?? .zero)
        let inFlight = min(roundTrip, .milliseconds(250)).nanosecondsClamped
        for sequence in sequences {
            if queuedResends[sequence] != nil { continue }
            if let previous = resends[sequence], now - previous.last < inFlight { continue }
            let count = resends[sequence]?.count ?? 0
            guard count < 6 else { resendsRefused += 1; continue }
            resends[sequence] = (count + 1, now)
            let bytes = mediaPackets[sequence].bytes + 2
            if congestionHandling == .respond {
                let copies = count == 0 ? max(1, firstResendCopies) : 1
                queuedResends[sequence] = copies
                for _ in 0..<copies {
                    pacer.enqueue(.resend(bytes: bytes, sequence: sequence), bytes: bytes, priority: .retransmission, at: time(now))
                }
            } else {
                transmit(.resend(bytes: bytes, sequence: sequence))
            }
        }
    }

    private mutating func transmit(_ packet: Packet) {
        let bytes: Int, kind: SentPacketKind, isMedia: Bool, media: Int?
        switch packet {
        case let .video(size, sequence):
            (bytes, kind, isMedia, media) = (size, .media, true, sequence)
            if let queued = videoEnqueued.removeValue(forKey: sequence) {
                longestVideoWait = max(longestVideoWait, now - queued)
                videoWaits.append((now, now - queued))
            }
        case .audio: (bytes, kind, isMedia, media) = (Self.audioBytes, .media, false, nil)
        case let .probe(cluster, size): (bytes, kind, isMedia, media) = (size, .probe(clusterID: cluster), false, nil)
        case let .resend(size, sequence):
            (bytes, kind, isMedia, media) = (size, .retransmission, false, sequence)
            if let left = queuedResends[sequence], left > 1 { queuedResends[sequence] = left - 1 } else { queuedResends[sequence] = nil }
            resends[sequence]?.last = now
            resendsSent += 1
        }
        let sequence = transportSequence
        transportSequence &+= 1
        let wire = bytes + Self.overheadBytes
        if useTransportFeedback {
            estimator.packetSent(transportSequenceNumber: sequence, bytes: wire, kind: kind, at: time(now))
        }
        if let arrival = link.send(bytes: wire, at: now) {
            inFlight.append((arrival, sequence, now, isMedia, media))
            if isMedia { deliveredMediaBytes.append((arrival, bytes)) }
        }
        if congestionHandling == .respond, congestion.isDraining {
            updatePacingRate()
        }
    }

    /// Chromium's freeze rule (webrtc-stats `freezeCount`): a frame shown more than
    /// max(3 × the mean frame interval, mean + 150 ms) after the one before is a freeze of that
    /// interval. Returns the freezes (ms) among frames shown from `from` to `to`.
    func freezes(from: Int64, to: Int64) -> [Double] {
        let shown = frames.compactMap(\.rendered).filter { $0 >= from - Self.second && $0 < to }
        var intervals: [Double] = []
        var freezes: [Double] = []
        for (previous, next) in zip(shown, shown.dropFirst()) {
            let interval = Double(next - previous) / 1e6
            let recent = intervals.suffix(30)
            let mean = recent.isEmpty ? 33.3 : recent.reduce(0, +) / Double(recent.count)
            if next >= from, interval > max(3 * mean, mean + 150) { freezes.append(interval) }
            intervals.append(interval)
        }
        return freezes
    }

    /// Frames shown per second in a window.
    func framesShownPerSecond(from: Int64, to: Int64) -> Double {
        Double(frames.filter { ($0.rendered ?? -1) >= from && ($0.rendered ?? -1) < to }.count) / (Double(to - from) / 1e9)
    }

    private mutating func deliverFeedback(_ datagram: [UInt8]) {
        guard let packets = try? RTCPPacket.parseCompound(datagram) else {
            parseFailures += 1
            return
        }
        for packet in packets {
            if case let .transportCC(feedback) = packet { estimator.transportFeedback(feedback, at: time(now)) }
        }
    }

    // MARK: Measurements

    /// The target at a time (the last sample at or before it).
    func target(at time: Int64) -> Int {
        var value = samples.first?.target ?? 0
        for sample in samples where sample.time <= time { value = sample.target }
        return value
    }

    /// First time at or after `from` the target is at most `limit`.
    func firstTime(from: Int64, where predicate: (Int) -> Bool) -> Int64? {
        samples.first { $0.time >= from && predicate($0.target) }?.time
    }

    /// Queueing delay seen by media packets sent in a window: the one-way delay minus propagation.
    func mediaQueueDelays(from: Int64, to: Int64) -> [Double] {
        mediaDelays.filter { $0.sent >= from && $0.sent < to }.map { Double($0.delay - link.propagation) / 1e6 }
    }

    func meanTarget(from: Int64, to: Int64) -> Double {
        let values = samples.filter { $0.time >= from && $0.time < to }.map { Double($0.target) }
        return values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count)
    }

    /// Media goodput delivered in a window, bits/s.
    func deliveredBitsPerSecond(from: Int64, to: Int64) -> Double {
        let bytes = deliveredMediaBytes.filter { $0.time >= from && $0.time < to }.reduce(0) { $0 + $1.bytes }
        return Double(bytes) * 8 / (Double(to - from) / 1e9)
    }
}
