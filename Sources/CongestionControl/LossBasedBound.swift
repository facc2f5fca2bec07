import RTCBase

/// draft-ietf-rmcat-gcc-02 §6: a bound from packet loss. Below 2 % loss it may grow (8 %/s), from
/// 2 to 10 % it holds, above 10 % it drops to rate × (1 − 0.5 × loss), at most once per RTT + 300 ms.
/// No bound (nil) until loss first asks for one: random loss below 10 % is no reason to cap the
/// delay-based estimate. Once the bound has grown back above the other limits it is lifted again.
struct LossBasedBound {
    static let lowLoss = 0.02
    static let highLoss = 0.10
    static let growthPerSecond = 1.08
    /// A loss figure is taken over at least this many packets and about this long.
    static let minimumPackets = 20
    static let window: Duration = .seconds(1)
    static let maximumPackets = 400

    private(set) var bitsPerSecond: Double?
    private(set) var lossFraction: Double?
    private var lastGrowth: MonotonicTime?
    private var lastDecrease: MonotonicTime?
    private var lost = 0
    private var packets = 0
    private var windowStart: MonotonicTime?

    /// Counts from one transport-wide feedback packet; a figure is taken once enough accumulated.
    mutating func addFeedback(lost newlyLost: Int, received: Int, lateArrivals: Int, at now: MonotonicTime,
                              target: Double, otherLimits: Double, roundTripTime: Duration) {
        if windowStart == nil { windowStart = now }
        lost += newlyLost - lateArrivals
        packets += newlyLost + received
        guard packets >= Self.minimumPackets,
              now - windowStart! >= Self.window || packets >= Self.maximumPackets else { return }
        let fraction = min(max(Double(lost) / Double(packets), 0), 1)
        lost = 0
        packets = 0
        windowStart = now
        update(lossFraction: fraction, at: now, target: target, otherLimits: otherLimits, roundTripTime: roundTripTime)
    }

    /// One loss figure (from feedback, or RTCP's fraction lost) at the current final target.
    mutating func update(lossFraction fraction: Double, at now: MonotonicTime, target: Double, otherLimits: Double,
                         roundTripTime: Duration) {
        guard fraction.isFinite else { return }
        let fraction = min(max(fraction, 0), 1)
        lossFraction = fraction
        if fraction < Self.lowLoss {
            grow(at: now, otherLimits: otherLimits)
        } else if fraction > Self.highLoss {
            let spacing = roundTripTime + .milliseconds(300)
            if let lastDecrease, now - lastDecrease < spacing { return }
            bitsPerSecond = min(bitsPerSecond ?? target, target) * (1 - 0.5 * fraction)
            lastDecrease = now
            lastGrowth = now
        } else {
            lastGrowth = now  // hold
        }
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
        guard let bound = bitsPerSecond, measured > bound, lossFraction ?? 0 <= Self.highLoss else { return }
        bitsPerSecond = measured
    }

    /// No feedback for a while although packets leave: assume the worst, step down.
    mutating func reduceForMissingFeedback(target: Double) {
        bitsPerSecond = min(bitsPerSecond ?? target, target) * 0.8
    }
}
