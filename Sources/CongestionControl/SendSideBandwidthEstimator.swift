import RTCBase
import RTP

/// A viewer's rate limits. The start rate is what is sent before any feedback; the target always
/// stays within minimum…maximum.
public struct BandwidthEstimatorConfiguration: Equatable, Sendable {
    public var startBitsPerSecond: Int
    public var minimumBitsPerSecond: Int
    public var maximumBitsPerSecond: Int
    /// Pacing rate = target × this (libwebrtc's 2.5).
    public var pacingFactor: Double
    /// Probe clusters at start, after successful probes and periodically below the maximum.
    public var probing: Bool

    public init(startBitsPerSecond: Int = 1_000_000, minimumBitsPerSecond: Int = 100_000,
                maximumBitsPerSecond: Int = 2_500_000, pacingFactor: Double = 2.5, probing: Bool = true) {
        self.minimumBitsPerSecond = max(10_000, minimumBitsPerSecond)
        self.maximumBitsPerSecond = max(self.minimumBitsPerSecond, maximumBitsPerSecond)
        self.startBitsPerSecond = min(max(startBitsPerSecond, self.minimumBitsPerSecond), self.maximumBitsPerSecond)
        self.pacingFactor = pacingFactor.isFinite ? min(max(pacingFactor, 1), 10) : 2.5
        self.probing = probing
    }
}

/// What the estimator knows, for `/api/status` and logs.
public struct BandwidthDiagnostics: Equatable, Sendable {
    public var targetBitsPerSecond: Int
    /// gcc-02 §5's estimate; nil until transport-wide feedback arrives.
    public var delayBasedBitsPerSecond: Int?
    /// gcc-02 §6's bound; nil while loss sets none.
    public var lossBasedBitsPerSecond: Int?
    public var rembBitsPerSecond: Int?
    /// What the remote measured receiving (feedback's arrival times).
    public var acknowledgedBitsPerSecond: Int?
    public var usage: BandwidthUsage
    public var rateControlState: RateControlState
    /// The detector's modified trend (ms) and adaptive threshold γ (ms).
    public var trend: Double
    public var threshold: Double
    public var lossFraction: Double?
    /// The loss the path has whatever the rate (see `LossBasedBound`): its bound acts on the loss above it.
    public var inherentLossFraction: Double? = nil
    public var roundTripTime: Duration?
    public var probeClustersSent: Int
    public var lastProbeBitsPerSecond: Int?
    public var feedbackPacketsIgnored: Int
    /// In a congestion episode (`SendSideBandwidthEstimator.isCongested`).
    public var congested: Bool = false
    /// How much the one-way delay grew (ms) over the trendline's window: a queue building up.
    public var delayRise: Double = 0
    /// Congestion episodes so far (see `SendSideBandwidthEstimator.isCongested`).
    public var congestionEpisodes: Int = 0
}

/// A viewer's send-side bandwidth estimate (draft-ietf-rmcat-gcc-02) from transport-wide
/// congestion-control feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01), RTCP receiver
/// reports and REMB. Sans-IO: the owner passes every time in and acts on what it reads out.
///
/// The owner: writes a transport-wide sequence number on every packet and calls `packetSent` as it
/// leaves; passes feedback, RR loss/RTT and REMB in; calls `handleTimeout` at `nextDeadline`; sets the
/// encoder from `targetBitsPerSecond` and the pacer from `pacingBitsPerSecond`; sends each
/// `takeProbeCluster` through the pacer as padding/RTX marked `.probe(clusterID:)`.
///
/// Target = min(delay-based (when transport-cc feedback flows), loss-based bound, REMB), clamped
/// to the configured range; a peer that sends only REMB is followed by REMB (and RR loss).
public struct SendSideBandwidthEstimator {
    public let configuration: BandwidthEstimatorConfiguration
    private var history = SendHistory()
    private var acknowledged = AcknowledgedBitrateEstimator()
    private var queueing = QueueingDelayTracker()
    private var delayBased: DelayBasedEstimator
    private var lossBound = LossBasedBound()
    private var probes: ProbeController
    private var remb: Double?
    private var transportFeedbackSeen = false
    private var lastFeedback: MonotonicTime?
    private var lastMissingFeedbackReduction: MonotonicTime?
    private var reportedRoundTripTime: Duration?
    private var feedbackRoundTripTime: Duration?
    /// The newest feedback's sample alone (send → feedback), unsmoothed: it sees a queue build at once.
    public private(set) var latestFeedbackRoundTripTime: Duration?
    private var ignoredFeedback = 0
    public private(set) var targetBitsPerSecond: Int
    /// When feedback last showed congestion (see `isCongested`).
    private var lastCongestionSign: MonotonicTime?
    /// Whether the link is congested (see `congestionHold`): `CongestionResponse` then paces at the
    /// link's delivery rate.
    public private(set) var isCongested = false
    public private(set) var congestionEpisodes = 0
    /// When the current congestion episode began (nil outside one).
    public private(set) var congestedSince: MonotonicTime?
    /// What the link delivered (bits/s) since its queue began to grow, measured at the latest sign
    /// of congestion (at least half of what arrived over the last half second); nil outside an episode.
    public var congestedDeliveryBitsPerSecond: Int? { congestedDelivery.map { Int(clamping: Int64($0)) } }
    private var congestedDelivery: Double?

    /// A queue that grows fast by tens of ms while more is sent than the link passes, or a loss
    /// burst with the delay up (a queue that overflowed), is congestion (a rate step, cross traffic
    /// arriving), not noise, a keyframe or random loss; `isCongested` for this long after the last
    /// such feedback (`CongestionResponse` acts on it).
    public static let congestionHold: Duration = .seconds(1)
    /// A queue grown by this much (ms), still growing, and fast (this many ms of delay per ms: the
    /// sender at 1.25 × what the link passes or more, as after a rate step or cross traffic's
    /// arrival) is congestion at once. AIMD's own probing above the link grows the queue far
    /// slower, and its usual decrease answers it.
    static let congestionDelayRise = 40.0
    static let congestionDelaySlope = 0.25
    /// …and only while what was sent over `sendRateWindow` is this many times what the link passes.
    static let congestionOvershoot = 1.25
    /// The one-way delay's own test (`QueueingDelayTracker.rise`) sees every frame's small queue,
    /// where the trendline sees groups: it takes a deeper queue growing faster than a frame or a
    /// keyframe on a link near its rate makes (a 5 → 0.8 Mb/s step grows it 1 ms per ms).
    static let directCongestionDelay = 60.0
    static let directCongestionSlope = 0.5
    /// …and only while twice what the link passes is sent (a rate step: 3-4 times; a keyframe on a
    /// link near its rate: about once).
    static let directCongestionOvershoot = 2.0
    static let sendRateWindow: Duration = .milliseconds(300)
    /// A feedback that reports at least this share of its packets lost is a loss burst.
    static let congestionLossShare = 0.2

    /// Without feedback this long while sending, the estimate steps down (× 0.8 a second).
    static let feedbackTimeout: Duration = .milliseconds(1500)
    /// Transport-cc is taken as flowing (and RR loss as redundant) this long after feedback.
    static let feedbackActive: Duration = .seconds(3)

    public init(configuration: BandwidthEstimatorConfiguration, now: MonotonicTime) {
        self.configuration = configuration
        let start = Double(configuration.startBitsPerSecond)
        delayBased = DelayBasedEstimator(start: start, minimum: Double(configuration.minimumBitsPerSecond),
                                         maximum: Double(configuration.maximumBitsPerSecond))
        probes = ProbeController(enabled: configuration.probing, start: start,
                                 maximum: Double(configuration.maximumBitsPerSecond), now: now)
        targetBitsPerSecond = configuration.startBitsPerSecond
    }

    // MARK: Inputs

    /// A packet left with this transport-wide sequence number.
    public mutating func packetSent(transportSequenceNumber: UInt16, bytes: Int, kind: SentPacketKind, at time: MonotonicTime) {
        history.record(sequenceNumber: transportSequenceNumber, bytes: bytes, kind: kind, at: time)
        if let cluster = kind.probeClusterID {
            probes.packetSent(clusterID: cluster, sequence: history.nextSequence - 1, bytes: bytes, at: time)
        }
    }

    public mutating func transportFeedback(_ feedback: TransportCCFeedback, at now: MonotonicTime) {
        let outcome = history.apply(feedback)
        guard outcome.highestCovered != nil else {
            ignoredFeedback += 1
            return
        }
        transportFeedbackSeen = true
        lastFeedback = now
        let received = outcome.results.filter(\.received)
        // The newest packet reported: send to feedback, an RTT plus up to one feedback interval.
        if let newest = received.max(by: { $0.sendTime < $1.sendTime }), now >= newest.sendTime {
            let sample = now - newest.sendTime
            if sample < .seconds(10) {
                latestFeedbackRoundTripTime = sample
                feedbackRoundTripTime = feedbackRoundTripTime.map { ($0 * 7 + sample) / 8 } ?? sample
            }
        }
        delayBased.rateControl.roundTripTime = roundTripTime ?? .milliseconds(200)
        acknowledged.update(received: received)
        queueing.update(received: received)
        if !received.isEmpty {
            delayBased.update(received: received, acknowledged: linkThroughput, at: now)
        }
        // Congestion, not noise: the queue grew by tens of ms and is still growing (a rate step
        // into a deep queue: the trendline's smoothed slope passes the detector's threshold only
        // when the queue is nearly full, two or three feedbacks later), or a burst of loss while
        // the delay grew (the queue overflowed; a loss shows one feedback after the delay). Random
        // loss is neither: a few percent, spread out, whatever the delay does.
        let delayRise = delayBased.trendline.delayRise
        let rise = delayRise?.rise ?? 0
        let reported = outcome.newlyLost + outcome.newlyReceived
        let lossBurst = reported >= 4
            && Double(outcome.newlyLost - outcome.lateArrivals) >= Self.congestionLossShare * Double(reported)
        // The link's rate: what arrived since the queue began to grow (the bottleneck busy all
        // along), else over the newest 200 ms.
        let since = delayRise.map { Int64(($0.since * 1000).rounded()) }
        let trendlineMeasured = since.flatMap(acknowledged.bitsPerSecond(arrivedAfter:))
        // One big frame (a keyframe) grows the queue as fast for a moment, but what was sent over
        // the last few hundred ms is about what the link passes: only more than that is congestion.
        let window = Self.sendRateWindow
        let sentRate = Double(history.bytesSent(after: now - window)) * 8 / (window.millisecondsDouble / 1000)
        let trendlineQueueGrew = rise >= Self.congestionDelayRise && (delayRise?.slope ?? 0) >= Self.congestionDelaySlope
            && trendlineMeasured.map { sentRate >= Self.congestionOvershoot * $0 } ?? false
        // The same test on the one-way delay itself (QueueingDelayTracker): it sees a queue that
        // one burst (a keyframe sent as the link slowed) fills at the first feedback, where the
        // trendline sees it only once the whole burst has arrived (150 ms later behind 800 kb/s).
        let queueRise = queueing.rise
        let measuredSinceQueue = queueRise.flatMap { acknowledged.bitsPerSecond(arrivedAfter: $0.since) }
        let delayQueueGrew = queueRise.map {
            $0.delay.millisecondsDouble >= Self.directCongestionDelay && $0.slope >= Self.directCongestionSlope
        } ?? false && measuredSinceQueue.map { sentRate >= Self.directCongestionOvershoot * $0 } ?? false
        let queueGrew = trendlineQueueGrew || delayQueueGrew
        let measured = trendlineQueueGrew ? trendlineMeasured : (trendlineMeasured ?? measuredSinceQueue)
        let delayUp = delayBased.detector.usage == .overusing || rise >= Self.congestionDelayRise / 2
        // A queue that overflowed is still deep when its losses are reported. Loss without one is
        // random loss, whatever the trendline says: on a lossy path with no queue (netem: 10 %, 50 ms
        // RTT) a receiver's stall bunched arrivals, the detector read overuse, and a feedback with
        // 2 of 8 packets lost started an episode that held a passthrough source's video (which
        // cannot follow the cut) in the pacer for 7-8 s (LossyPassthroughTests).
        let linkQueued = (queueing.delay?.millisecondsDouble ?? 0) >= Self.congestionDelayRise / 2
        if queueGrew || (lossBurst && delayUp && linkQueued) {
            lastCongestionSign = now
            if var delivered = (queueGrew ? measured : nil) ?? (congestedDelivery == nil ? acknowledged.recentBitsPerSecond : nil) {
                // One feedback never takes the rate below half of what arrived over the last half
                // second: a receiver that stalled on a loaded machine can look like a queue with
                // almost nothing delivered. A real step gets there by the next sign or two.
                if let acknowledgedRate = acknowledged.bitsPerSecond { delivered = max(delivered, acknowledgedRate / 2) }
                congestedDelivery = delivered
            }
            // Cut at every sign (AIMD's decrease, to β × the link's rate), as long as the queue
            // grows or overflows.
            if let delivered = congestedDelivery {
                delayBased.rateControl.congestionCut(deliveredBitsPerSecond: delivered, at: now)
            }
        }
        updateCongestion(now: now)
        // The loss bound takes loss with the link's queue up (or in an episode) for the queue's
        // overflow; without, it first measures it against the path's own random loss.
        lossBound.addFeedback(lost: outcome.newlyLost, received: outcome.newlyReceived, lateArrivals: outcome.lateArrivals,
                              queued: linkQueued || isCongested, at: now, target: Double(targetBitsPerSecond), otherLimits: limitWithoutLoss,
                              roundTripTime: roundTripTime ?? .milliseconds(200))
        for entry in probes.takeReported(highestReported: history.highestReported, now: now) {
            var measured: Double?
            if let first = entry.firstSequence, let last = entry.lastSequence {
                measured = ProbeController.measure(history.records(in: first...last), cluster: entry.cluster)
            }
            if let measured {
                delayBased.rateControl.probeResult(bitsPerSecond: measured, at: now)
                lossBound.probeResult(bitsPerSecond: measured)
            }
            updateTarget()
            probes.result(measured, for: entry.cluster, estimate: Double(targetBitsPerSecond), at: now)
        }
        updateTarget()
    }

    /// RTCP RR (RFC 3550 §6.4.1): fraction lost as 0…1 (the 8-bit field / 256), and the round trip
    /// from LSR/DLSR when known. The loss is used only when transport-cc feedback is not flowing
    /// (it already carries every loss).
    public mutating func receiverReport(fractionLost: Double, roundTripTime: Duration?, at now: MonotonicTime) {
        if let roundTripTime, roundTripTime > .zero, roundTripTime < .seconds(10) {
            reportedRoundTripTime = roundTripTime
            delayBased.rateControl.roundTripTime = roundTripTime
        }
        guard !feedbackFlowing(at: now) else { return }
        lossBound.update(lossFraction: fractionLost, at: now, target: Double(targetBitsPerSecond),
                         otherLimits: limitWithoutLoss, roundTripTime: self.roundTripTime ?? .milliseconds(200))
        updateTarget()
    }

    /// REMB (draft-alvestrand-rmcat-remb-03): the receiver's own estimate, an upper bound.
    public mutating func receiverEstimatedMaximum(bitsPerSecond: Int, at now: MonotonicTime) {
        guard bitsPerSecond > 0 else { return }
        remb = Double(bitsPerSecond)
        updateTarget()
    }

    /// Periodic work: probe scheduling and the missing-feedback step-down.
    public mutating func handleTimeout(now: MonotonicTime) {
        if transportFeedbackSeen, let lastFeedback, now - lastFeedback >= Self.feedbackTimeout,
           let lastSend = history.lastSendTime, lastSend > lastFeedback + .milliseconds(500),
           lastMissingFeedbackReduction.map({ now - $0 >= .seconds(1) }) ?? true {
            lossBound.reduceForMissingFeedback(target: Double(targetBitsPerSecond))
            lastMissingFeedbackReduction = now
        }
        updateCongestion(now: now)
        probes.handleTimeout(now: now, estimate: Double(targetBitsPerSecond), lastOveruse: delayBased.rateControl.lastOveruse,
                             usage: delayBased.detector.usage)
        updateTarget()
    }

    // MARK: Outputs

    public var nextDeadline: MonotonicTime? {
        var feedbackCheck: MonotonicTime?
        if transportFeedbackSeen, let lastFeedback {
            let due = lastFeedback + Self.feedbackTimeout
            feedbackCheck = lastMissingFeedbackReduction.map { max(due, $0 + .seconds(1)) } ?? due
        }
        return earliest(probes.nextPeriodicProbe, feedbackCheck, lastCongestionSign.map { $0 + Self.congestionHold })
    }

    /// The target × `pacingFactor`: a frame leaves in a short burst (`CongestionResponse` paces
    /// slower while the link is congested).
    public var pacingBitsPerSecond: Int {
        Int(clamping: Int64(Double(targetBitsPerSecond) * configuration.pacingFactor))
    }

    /// The next probe cluster to send, if one is due; the estimator then waits for its feedback.
    public mutating func takeProbeCluster(now: MonotonicTime) -> ProbeCluster? {
        probes.take(now: now)
    }

    public var diagnostics: BandwidthDiagnostics {
        BandwidthDiagnostics(
            targetBitsPerSecond: targetBitsPerSecond,
            delayBasedBitsPerSecond: transportFeedbackSeen ? Int(delayBased.rateControl.bitsPerSecond) : nil,
            lossBasedBitsPerSecond: lossBound.bitsPerSecond.map { Int(clamping: Int64($0)) },
            rembBitsPerSecond: remb.map { Int(clamping: Int64($0)) },
            acknowledgedBitsPerSecond: acknowledged.bitsPerSecond.map { Int(clamping: Int64($0)) },
            usage: delayBased.detector.usage,
            rateControlState: delayBased.rateControl.state,
            trend: delayBased.trendline.modifiedTrend,
            threshold: delayBased.detector.threshold,
            lossFraction: lossBound.lossFraction,
            inherentLossFraction: lossBound.inherentLossFraction,
            roundTripTime: roundTripTime,
            probeClustersSent: probes.clustersTaken,
            lastProbeBitsPerSecond: probes.lastResult.map { Int(clamping: Int64($0)) },
            feedbackPacketsIgnored: ignoredFeedback,
            congested: isCongested,
            delayRise: delayBased.trendline.recentDelayRise,
            congestionEpisodes: congestionEpisodes)
    }

    // MARK: Combining

    private mutating func updateCongestion(now: MonotonicTime) {
        isCongested = lastCongestionSign.map { now - $0 < Self.congestionHold } ?? false
        if isCongested {
            if congestedSince == nil {
                congestedSince = now
                congestionEpisodes += 1
            }
        } else {
            lastCongestionSign = nil
            congestedSince = nil
            congestedDelivery = nil
        }
    }

    /// How long the newest packet transport-cc reported waited in the path's queues (its one-way
    /// delay above the lowest of the last 10 s); nil before feedback.
    public var linkQueueDelay: Duration? { queueing.delay }

    /// The link's queue now, in a congestion episode: the newest reported packet's
    /// (`linkQueueDelay`), plus what was sent after it (it waits behind it), served at the link's
    /// delivery rate, less the time since. Feedback reports a packet only once it is through the
    /// queue: after a rate step into a 200 ms queue, `linkQueueDelay` said 95 ms while the queue
    /// was full, and the pacer went on filling it for 130 ms more at 0.9-0.55 × the link's rate
    /// (the resends then waited behind that). Lost packets count as if queued: an overflowing
    /// queue reads deeper than it is, never shorter. Outside an episode: `linkQueueDelay`.
    public func projectedLinkQueueDelay(now: MonotonicTime) -> Duration? {
        guard let reported = queueing.newestReported else { return nil }
        guard let delivery = congestedDelivery, delivery > 0 else { return reported.delay }
        let behind = Double(history.bytesSent(after: reported.sent)) * 8 / delivery
        let leaves = reported.sent + reported.delay + .nanoseconds(Int64(behind * 1e9))
        return leaves > now ? leaves - now : .zero
    }

    public var roundTripTime: Duration? { reportedRoundTripTime ?? feedbackRoundTripTime }

    /// What the link carried, bits/s, for AIMD (its decrease goes to β × this): what arrived, plus
    /// the share lost at random. Random loss (up to 10 %, which the loss bound learns as the path's
    /// own and does not take for congestion) is mostly after the bottleneck (a radio hop, the interop tests' nft
    /// rule behind tbf): those packets passed the bottleneck. Without this, every decrease on a link
    /// with 5 % random loss went to 0.85 × 0.95 of it, and the sawtooth's mean with it.
    private var linkThroughput: Double? {
        guard let arrived = acknowledged.bitsPerSecond else { return nil }
        let loss = min(max(lossBound.lossFraction ?? 0, 0), LossBasedBound.highLoss)
        return arrived / (1 - loss)
    }

    private func feedbackFlowing(at now: MonotonicTime) -> Bool {
        guard let lastFeedback else { return false }
        return now - lastFeedback < Self.feedbackActive
    }

    /// min(delay-based, REMB), or the start rate when neither exists.
    private var limitWithoutLoss: Double {
        var limit = Double.infinity
        if transportFeedbackSeen { limit = delayBased.rateControl.bitsPerSecond }
        if let remb { limit = min(limit, remb) }
        return limit.isFinite ? limit : Double(configuration.startBitsPerSecond)
    }

    private mutating func updateTarget() {
        var target = limitWithoutLoss
        if let bound = lossBound.bitsPerSecond { target = min(target, bound) }
        let minimum = Double(configuration.minimumBitsPerSecond), maximum = Double(configuration.maximumBitsPerSecond)
        target = target.isFinite ? min(max(target, minimum), maximum) : minimum
        targetBitsPerSecond = Int(target)
    }
}
