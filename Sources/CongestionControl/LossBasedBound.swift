import RTCBase

/// draft-ietf-rmcat-gcc-02 §6: a bound from packet loss. Below 2 % loss it may grow (8 %/s), from
/// 2 to 10 % it holds, above 10 % it drops to rate × (1 − 0.5 × loss), at most once per RTT + 300 ms
/// ("loss" here: the loss above the path's inherent loss, below).
/// No bound (nil) until loss first asks for one: random loss below 10 % is no reason to cap the
/// delay-based estimate. Once the bound has grown back above the other limits it is lifted again.
///
/// The thresholds apply to the loss above the path's inherent loss: what it loses whatever the rate
/// (a radio hop, netem's random loss), the mean of the recent figures that were not judged to be
/// congestion. gcc-02's thresholds on the raw figure ratchet on a path that loses 10 % at random: a
/// second's figure is ~130 packets, so it reads 10 % ± 2.6 points, half of the figures cut, the
/// other half only hold, and nothing ever grows (a rehearsal's passed-through clip: the bound went
/// 985 → 541 kb/s in 15 s with the delay-based estimate at 1477 and no queue). Congestion still
/// cuts as before: its figures are measured against the loss from before it, and are never taken
/// into the inherent loss themselves, nor are figures taken while the path's queue was up, and the
/// inherent loss is at most 10 % (more is not learnt: a policer's drops would be). Where
/// the queue was not up, a figure is taken for congestion only when it is over the threshold by
/// more than its own noise. (libwebrtc's newer loss-based estimator keeps an inherent
/// loss apart for the same reason.)
struct LossBasedBound {
    static let lowLoss = 0.02
    static let highLoss = 0.10
    static let growthPerSecond = 1.08
    /// A loss figure is taken over at least this many packets and about this long.
    static let minimumPackets = 20
    static let window: Duration = .seconds(1)
    static let maximumPackets = 400
    /// The inherent loss is the packet-weighted mean of the newest figures not taken for congestion,
    /// over this long and at least this many packets. Older figures go only as newer ones come: in
    /// congestion, the loss from before it stays the reference.
    static let inherentLossSpan: Duration = .seconds(5)
    static let inherentLossPackets = 500
    /// At most this many figures are kept (receiver reports come as often as a peer sends them).
    static let inherentLossFigures = 64
    /// Weight of a figure that comes without a packet count (an RTCP receiver report's fraction lost).
    static let packetsOfAReport = 100

    private(set) var bitsPerSecond: Double?
    /// The newest figure, all loss counted.
    private(set) var lossFraction: Double?
    /// The inherent loss the newest figure was measured against.
    private(set) var inherentLossFraction: Double?
    /// The newest figure above the inherent loss then.
    var excessLossFraction: Double? { lossFraction.map { $0 - (inherentLossFraction ?? 0) } }
    private var lastGrowth: MonotonicTime?
    private var lastDecrease: MonotonicTime?
    private var lost = 0
    private var packets = 0
    private var windowStart: MonotonicTime?
    private var queuedPackets = 0
    /// The newest figures not taken for congestion, oldest first: (when, loss, packets).
    private var inherentFigures: [(at: MonotonicTime, loss: Double, packets: Int)] = []

    /// Counts from one transport-wide feedback packet; a figure is taken once enough accumulated.
    /// `queued`: the path's queue was up when this feedback's packets went through it (the estimator's
    /// judgement). A figure whose packets came mostly with the queue up takes its loss for the queue
    /// overflowing (one feedback over a keyframe's burst does not make a second's figure queued).
    mutating func addFeedback(lost newlyLost: Int, received: Int, lateArrivals: Int, queued: Bool = false,
                              at now: MonotonicTime, target: Double, otherLimits: Double, roundTripTime: Duration) {
        if windowStart == nil { windowStart = now }
        lost += newlyLost - lateArrivals
        packets += newlyLost + received
        if queued { queuedPackets += newlyLost + received }
        guard packets >= Self.minimumPackets,
              now - windowStart! >= Self.window || packets >= Self.maximumPackets else { return }
        let fraction = min(max(Double(lost) / Double(packets), 0), 1)
        let counted = packets, queued = 2 * queuedPackets >= packets
        lost = 0
        packets = 0
        queuedPackets = 0
        windowStart = now
        update(lossFraction: fraction, packets: counted, queued: queued, at: now, target: target,
               otherLimits: otherLimits, roundTripTime: roundTripTime)
    }

    /// One loss figure (from feedback, or RTCP's fraction lost) at the current final target, over
    /// `packets`, and whether the path's queue was up meanwhile.
    mutating func update(lossFraction fraction: Double, packets: Int = Self.packetsOfAReport, queued: Bool = false,
                         at now: MonotonicTime, target: Double, otherLimits: Double, roundTripTime: Duration) {
        guard fraction.isFinite else { return }
        let fraction = min(max(fraction, 0), 1)
        lossFraction = fraction
        let inherent = inherentLoss(at: now)
        let excess = fraction - inherent
        inherentLossFraction = inherent
        // With no queue, congestion only where the figure is over the threshold by more than its
        // own noise (two standard errors of a loss share over this many packets): at the onset of
        // 10 % random loss, before the inherent loss knows of it, a second's figure reads up to
        // ~15 %. With the queue up, loss over the threshold is the queue overflowing (a rate step:
        // the second cut, at 12 % over 164 packets, is what drained a 500 ms queue in time).
        let noise = queued ? 0 : 2 * (fraction * (1 - fraction) / Double(max(packets, 1))).squareRoot()
        if excess - noise > Self.highLoss {
            // Congestion: never part of the inherent loss.
            let spacing = roundTripTime + .milliseconds(300)
            if let lastDecrease, now - lastDecrease < spacing { return }
            bitsPerSecond = min(bitsPerSecond ?? target, target) * (1 - 0.5 * excess)
            lastDecrease = now
            lastGrowth = now
            return
        }
        // With the queue up the loss may be its overflow: not the path's own. Nor is a figure over
        // the threshold that only its noise kept from a cut.
        if !queued, excess <= Self.highLoss {
            inherentFigures.append((now, fraction, max(packets, 1)))
            if inherentFigures.count > Self.inherentLossFigures { inherentFigures.removeFirst() }
        }
        if excess < Self.lowLoss {
            grow(at: now, otherLimits: otherLimits)
        } else {
            lastGrowth = now  // hold
        }
    }

    /// The loss the path has whatever the rate: 0 until figures that are not congestion say more.
    mutating func inherentLoss(at now: MonotonicTime) -> Double {
        var packets = inherentFigures.reduce(0) { $0 + $1.packets }
        while inherentFigures.count > 1, now - inherentFigures[1].at >= Self.inherentLossSpan,
              packets - inherentFigures[0].packets >= Self.inherentLossPackets {
            packets -= inherentFigures.removeFirst().packets
        }
        guard packets > 0 else { return 0 }
        return min(inherentFigures.reduce(0) { $0 + $1.loss * Double($1.packets) } / Double(packets), Self.highLoss)
    }

    private mutating func grow(at now: MonotonicTime, otherLimits: Double) {
        defer { lastGrowth = now }
        guard let bound = bitsPerSecond else { return }
        let elapsed = lastGrowth.map { min(max((now - $0).millisecondsDouble / 1000, 0), 1) } ?? 0
        let grown = bound * power(Self.growthPerSecond, elapsed) + 1000 * elapsed
        bitsPerSecond = grown >= otherLimits ? nil : grown
    }

    /// A probe measured more than the bound: the path carries it.
    mutating func probeResult(bitsPerSecond measured: Double) {
        guard let bound = bitsPerSecond, measured > bound, excessLossFraction ?? 0 <= Self.highLoss else { return }
        bitsPerSecond = measured
    }

    /// No feedback for a while although packets leave: assume the worst, step down.
    mutating func reduceForMissingFeedback(target: Double) {
        bitsPerSecond = min(bitsPerSecond ?? target, target) * 0.8
    }
}
