import RTCBase

/// The delay signal (draft-ietf-rmcat-gcc-02 §5.5).
public enum BandwidthUsage: String, Sendable {
    case normal, underusing, overusing
}

/// AIMD's state (gcc-02 §5.5).
public enum RateControlState: String, Sendable {
    case hold, increase, decrease
}

/// gcc-02 §5.2: packets are grouped into send bursts of `burstSpan`; for each pair of consecutive
/// complete groups it yields the send-time delta, the arrival-time delta and the arrival time of the
/// later group. Packets that arrive out of send order are skipped; an arrival-time jump (a remote
/// clock reset, garbage feedback) restarts the grouping.
struct InterArrivalGrouper {
    struct Group {
        var firstSend: Int64  // µs on our clock
        var lastSend: Int64
        var firstArrival: Int64  // µs on the remote clock
        var lastArrival: Int64
        var bytes: Int
    }

    struct Deltas {
        var sendDeltaMilliseconds: Double
        var arrivalDeltaMilliseconds: Double
        var arrivalMilliseconds: Double
    }

    static let burstSpan: Int64 = 5_000
    /// gcc-02 §5.2's burst rule: a packet arriving this soon after the group's last one, with a
    /// smaller arrival than send spacing, belongs to the group.
    static let burstArrivalSpan: Int64 = 5_000
    static let arrivalJumpLimit: Int64 = 3_000_000
    static let reorderedLimit = 3

    private var current: Group?
    private var previous: Group?
    private var reordered = 0

    mutating func reset() {
        current = nil
        previous = nil
        reordered = 0
    }

    mutating func add(sendMicroseconds send: Int64, arrivalMicroseconds arrival: Int64, bytes: Int) -> Deltas? {
        guard var group = current else {
            current = Group(firstSend: send, lastSend: send, firstArrival: arrival, lastArrival: arrival, bytes: bytes)
            return nil
        }
        if send < group.firstSend { return nil }  // sent before the group being built: out of order
        if belongs(send: send, arrival: arrival, to: group) {
            group.lastSend = max(group.lastSend, send)
            group.lastArrival = max(group.lastArrival, arrival)
            group.bytes += bytes
            current = group
            return nil
        }
        var deltas: Deltas?
        if let previous {
            let sendDelta = group.lastSend - previous.lastSend
            let arrivalDelta = group.lastArrival - previous.lastArrival
            if arrivalDelta - sendDelta > Self.arrivalJumpLimit || arrivalDelta < -Self.arrivalJumpLimit {
                reset()
                current = Group(firstSend: send, lastSend: send, firstArrival: arrival, lastArrival: arrival, bytes: bytes)
                return nil
            }
            if arrivalDelta < 0 {
                reordered += 1
                if reordered >= Self.reorderedLimit { reset() }
                current = Group(firstSend: send, lastSend: send, firstArrival: arrival, lastArrival: arrival, bytes: bytes)
                return nil
            }
            reordered = 0
            deltas = Deltas(sendDeltaMilliseconds: Double(sendDelta) / 1000,
                            arrivalDeltaMilliseconds: Double(arrivalDelta) / 1000,
                            arrivalMilliseconds: Double(group.lastArrival) / 1000)
        }
        previous = group
        current = Group(firstSend: send, lastSend: send, firstArrival: arrival, lastArrival: arrival, bytes: bytes)
        return deltas
    }

    private func belongs(send: Int64, arrival: Int64, to group: Group) -> Bool {
        if send - group.firstSend <= Self.burstSpan { return true }
        let arrivalDelta = arrival - group.lastArrival
        let sendDelta = send - group.lastSend
        return arrivalDelta >= 0 && arrivalDelta <= Self.burstArrivalSpan && arrivalDelta - sendDelta < 0
    }
}

/// gcc-02 §5.3, as a trendline: the accumulated one-way delay variation, exponentially smoothed,
/// and the slope of its linear regression over the last `windowSize` groups against arrival time.
struct TrendlineFilter {
    static let windowSize = 20
    static let smoothing = 0.9
    static let gain = 4.0
    static let deltaCap = 60

    private var accumulatedDelay = 0.0
    private var smoothedDelay = 0.0
    private var firstArrival: Double?
    private var window: [(x: Double, y: Double)] = []
    /// The accumulated delay (unsmoothed) of the groups in `window`, with their arrival (ms, remote clock).
    private var accumulatedWindow: [(arrival: Double, delay: Double)] = []
    private(set) var trend = 0.0
    private(set) var deltaCount = 0

    /// The trend scaled as the detector compares it: slope × min(deltas, 60) × gain, in ms.
    var modifiedTrend: Double { Double(min(deltaCount, Self.deltaCap)) * trend * Self.gain }

    mutating func reset() { self = TrendlineFilter() }

    /// How much the one-way delay grew (ms) from its lowest over the last `windowSize` groups to the
    /// newest: the queue that built up meanwhile. A few ms from jitter; a rate step into a deep
    /// queue shows tens of ms within one feedback interval.
    ///
    /// Only while the newest group is at the top (within `risePeak` ms of the highest): a receiver
    /// that stalled for a moment (a loaded machine) shows a spike that its next packets, arriving
    /// together, take back at once; a queue keeps growing.
    var recentDelayRise: Double { delayRise?.rise ?? 0 }

    /// The rise, the arrival time (ms, remote clock) where it began (from then on the bottleneck
    /// was busy, and what arrived since came at its rate), and its slope (ms of delay per ms: what
    /// is sent over what the link passes, less one).
    var delayRise: (rise: Double, since: Double, slope: Double)? {
        guard let last = accumulatedWindow.last, let lowest = accumulatedWindow.min(by: { $0.delay < $1.delay }),
              let highest = accumulatedWindow.map(\.delay).max(), last.delay >= highest - Self.risePeak,
              last.delay > lowest.delay else { return nil }
        // Where the rise began: the newest group still near the lowest delay.
        let start = accumulatedWindow.last { $0.delay <= lowest.delay + Self.risePeak } ?? lowest
        let rise = last.delay - lowest.delay
        return (rise, start.arrival, rise / max(last.arrival - start.arrival, 1))
    }

    static let risePeak = 5.0

    mutating func update(_ deltas: InterArrivalGrouper.Deltas) {
        let variation = deltas.arrivalDeltaMilliseconds - deltas.sendDeltaMilliseconds
        guard variation.isFinite else { return }
        deltaCount = min(deltaCount + 1, 1000)
        accumulatedDelay += variation
        smoothedDelay = Self.smoothing * smoothedDelay + (1 - Self.smoothing) * accumulatedDelay
        if firstArrival == nil { firstArrival = deltas.arrivalMilliseconds }
        window.append((deltas.arrivalMilliseconds - firstArrival!, smoothedDelay))
        if window.count > Self.windowSize { window.removeFirst(window.count - Self.windowSize) }
        accumulatedWindow.append((deltas.arrivalMilliseconds, accumulatedDelay))
        if accumulatedWindow.count > Self.windowSize { accumulatedWindow.removeFirst(accumulatedWindow.count - Self.windowSize) }
        if window.count == Self.windowSize, let slope = Self.slope(window) { trend = slope }
    }

    static func slope(_ points: [(x: Double, y: Double)]) -> Double? {
        let n = Double(points.count)
        let meanX = points.reduce(0) { $0 + $1.x } / n
        let meanY = points.reduce(0) { $0 + $1.y } / n
        var numerator = 0.0, denominator = 0.0
        for point in points {
            numerator += (point.x - meanX) * (point.y - meanY)
            denominator += (point.x - meanX) * (point.x - meanX)
        }
        guard denominator > 0 else { return nil }
        let slope = numerator / denominator
        return slope.isFinite ? slope : nil
    }
}

/// gcc-02 §5.4: compares the modified trend with an adaptive threshold γ; overuse must last
/// `overuseTime` and more than one group, with a trend not falling.
struct OveruseDetector {
    static let increaseGain = 0.0087  // k_u
    static let decreaseGain = 0.039  // k_d
    static let initialThreshold = 12.5
    static let thresholdRange = 6.0...600.0
    static let overuseTime = 10.0  // ms
    static let maximumAdaptationStep = 100.0  // ms

    private(set) var threshold = initialThreshold
    private(set) var usage: BandwidthUsage = .normal
    private var overuseMilliseconds = -1.0
    private var overuseCount = 0
    private var previousTrend = 0.0
    private var lastAdaptation: Double?

    mutating func detect(modifiedTrend: Double, trend: Double, sendDeltaMilliseconds: Double, deltaCount: Int,
                         nowMilliseconds: Double) -> BandwidthUsage {
        guard deltaCount >= 2 else { return .normal }
        if modifiedTrend > threshold {
            overuseMilliseconds = overuseMilliseconds < 0 ? sendDeltaMilliseconds / 2 : overuseMilliseconds + sendDeltaMilliseconds
            overuseCount += 1
            if overuseMilliseconds > Self.overuseTime, overuseCount > 1, trend >= previousTrend {
                overuseMilliseconds = 0
                overuseCount = 0
                usage = .overusing
            }
        } else if modifiedTrend < -threshold {
            overuseMilliseconds = -1
            overuseCount = 0
            usage = .underusing
        } else {
            overuseMilliseconds = -1
            overuseCount = 0
            usage = .normal
        }
        previousTrend = trend
        adapt(modifiedTrend: modifiedTrend, nowMilliseconds: nowMilliseconds)
        return usage
    }

    /// γ(i) = γ(i-1) + Δt · k · (|m(i)| − γ(i-1)), with k_d below γ and k_u above (gcc-02 §5.4);
    /// spikes more than 15 ms beyond γ do not move it.
    private mutating func adapt(modifiedTrend: Double, nowMilliseconds: Double) {
        let magnitude = abs(modifiedTrend)
        guard let last = lastAdaptation else { lastAdaptation = nowMilliseconds; return }
        if magnitude > threshold + 15 { lastAdaptation = nowMilliseconds; return }
        let gain = magnitude < threshold ? Self.decreaseGain : Self.increaseGain
        let elapsed = min(max(nowMilliseconds - last, 0), Self.maximumAdaptationStep)
        threshold += gain * (magnitude - threshold) * elapsed
        threshold = min(max(threshold, Self.thresholdRange.lowerBound), Self.thresholdRange.upperBound)
        lastAdaptation = nowMilliseconds
    }
}

/// The throughput the remote measured: bytes received over the last `window` of remote arrival time.
struct AcknowledgedBitrateEstimator {
    static let window: Int64 = 500_000  // µs
    static let minimumSpan: Int64 = 150_000

    private var samples: [(arrival: Int64, bytes: Int)] = []
    private var head = 0
    private var firstArrival: Int64?
    private var newestArrival: Int64?
    private var windowBytes = 0
    private(set) var bitsPerSecond: Double?

    /// The newest `recentWindow` of arrivals alone, bits/s (nil under `recentMinimumSpan`). While a
    /// queue builds at the bottleneck, packets leave it back to back: this is the link's rate, where
    /// the half-second window still holds what arrived before a rate step.
    static let recentWindow: Int64 = 200_000
    static let reorderAllowance: Int64 = 50_000
    static let recentMinimumSpan: Int64 = 80_000
    var recentBitsPerSecond: Double? {
        guard let newest = newestArrival, head < samples.count else { return nil }
        var index = samples.count - 1
        var bytes = 0
        var oldest = newest
        // Walk back from the newest; the oldest packet's bytes arrived before the span began.
        while index >= head, samples[index].arrival >= newest - Self.recentWindow {
            oldest = min(oldest, samples[index].arrival)
            bytes += samples[index].bytes
            index -= 1
        }
        let span = newest - oldest
        guard span >= Self.recentMinimumSpan, let last = samples[(index + 1)...].min(by: { $0.arrival < $1.arrival })
        else { return nil }
        return Double(bytes - last.bytes) * 8 * 1_000_000 / Double(span)
    }

    /// What arrived after `since` (µs, remote clock), bits/s: the link's rate while its queue
    /// built up from then on. Nil over fewer than 4 packets or 30 ms.
    func bitsPerSecond(arrivedAfter since: Int64) -> Double? {
        guard let newest = newestArrival, newest - since >= 30_000 else { return nil }
        // A rise that began before the newest 200 ms: all of those came at the link's rate.
        if newest - since > Self.recentWindow { return recentBitsPerSecond }
        var bytes = 0, packets = 0
        var index = samples.count - 1
        // Samples come in feedback (sequence) order: a resend or probe may have arrived out of
        // order, so the walk goes on a little past `since`.
        while index >= head, samples[index].arrival > since - Self.reorderAllowance {
            if samples[index].arrival > since {
                bytes += samples[index].bytes
                packets += 1
            }
            index -= 1
        }
        guard packets >= 4 else { return nil }
        return Double(bytes) * 8 * 1_000_000 / Double(newest - since)
    }

    mutating func update(received: [PacketResult]) {
        for packet in received {
            guard let arrival = packet.arrivalMicroseconds else { continue }
            if let newest = newestArrival, arrival > newest + 5_000_000 || arrival < newest - 1_000_000 {
                samples.removeAll(keepingCapacity: true)
                head = 0
                windowBytes = 0
                firstArrival = nil
                newestArrival = nil
            }
            if firstArrival == nil { firstArrival = arrival }
            newestArrival = max(newestArrival ?? arrival, arrival)
            samples.append((arrival, packet.bytes))
            windowBytes += packet.bytes
        }
        guard let newest = newestArrival, let first = firstArrival else { return }
        while head < samples.count, samples[head].arrival <= newest - Self.window {
            windowBytes -= samples[head].bytes
            head += 1
        }
        if head > 512, head * 2 > samples.count {
            samples.removeFirst(head)
            head = 0
        }
        let span = min(newest - first, Self.window)
        guard span >= Self.minimumSpan else { return }
        bitsPerSecond = Double(windowBytes) * 8 * 1_000_000 / Double(span)
    }
}

/// An average of the throughput seen at overuse, kbps (gcc-02 §5.5: "the average max bit rate"),
/// with a normalised variance; AIMD increases additively while the throughput is within 3σ.
struct LinkCapacityEstimate {
    private(set) var averageKbps: Double?
    private var normalizedVariance = 0.4

    private var deviationKbps: Double { (normalizedVariance * (averageKbps ?? 0)).squareRoot() }
    var upperBoundBitsPerSecond: Double { ((averageKbps ?? .infinity) + 3 * deviationKbps) * 1000 }
    var lowerBoundBitsPerSecond: Double { max(0, ((averageKbps ?? 0) - 3 * deviationKbps) * 1000) }
    var hasEstimate: Bool { averageKbps != nil }

    mutating func reset() { averageKbps = nil }

    mutating func addOveruseSample(bitsPerSecond: Double) {
        let sample = bitsPerSecond / 1000
        guard let average = averageKbps else { averageKbps = sample; return }
        if sample < lowerBoundBitsPerSecond / 1000 { averageKbps = sample; return }  // a new, lower level
        let alpha = 0.05
        let updated = (1 - alpha) * average + alpha * sample
        normalizedVariance = (1 - alpha) * normalizedVariance + alpha * (updated - sample) * (updated - sample) / max(updated, 1)
        normalizedVariance = min(max(normalizedVariance, 0.4), 2.5)
        averageKbps = updated
    }
}

/// gcc-02 §5.5: additive-increase (near the last overuse level) or multiplicative-increase (8 %/s),
/// multiplicative-decrease to β = 0.85 of the acknowledged bitrate, and hold.
struct AIMDRateControl {
    static let beta = 0.85
    static let multiplicativeGainPerSecond = 1.08
    static let expectedPacketBits = 1200.0 * 8

    private(set) var bitsPerSecond: Double
    private(set) var state: RateControlState = .increase
    private(set) var linkCapacity = LinkCapacityEstimate()
    var minimum: Double
    var maximum: Double
    var roundTripTime: Duration = .milliseconds(200)
    private var lastUpdate: MonotonicTime?
    private var lastReduction: MonotonicTime?
    private(set) var lastOveruse: MonotonicTime?

    init(start: Double, minimum: Double, maximum: Double) {
        self.minimum = minimum
        self.maximum = maximum
        bitsPerSecond = min(max(start, minimum), maximum)
    }

    /// A probe measured `bitsPerSecond`: take 95 % of it when that is above the current estimate (a
    /// probe's few packets through a shaper's bucket read a little above the link's rate; taking all
    /// of it sends the encoder over the link and straight into overuse: measured on a tbf link).
    static let probeUtilization = 0.95

    mutating func probeResult(bitsPerSecond measured: Double, at now: MonotonicTime) {
        let usable = measured * Self.probeUtilization
        guard usable.isFinite, usable > bitsPerSecond else { return }
        bitsPerSecond = min(usable, maximum)
        lastUpdate = now
    }

    /// Limits the estimate from outside (a lower final target after loss): keeps increases relative
    /// to what is really sent.
    mutating func capAt(_ bitsPerSecond: Double) {
        self.bitsPerSecond = max(minimum, min(self.bitsPerSecond, bitsPerSecond))
    }

    mutating func update(usage: BandwidthUsage, acknowledged: Double?, at now: MonotonicTime) {
        switch usage {
        case .overusing:
            lastOveruse = now
            if canReduce(acknowledged: acknowledged, at: now) { state = .decrease }
        case .normal:
            if state == .hold { state = .increase }
        case .underusing:
            state = .hold
        }
        let elapsed = lastUpdate.map { min(max((now - $0).millisecondsDouble / 1000, 0), 1) } ?? 0
        switch state {
        case .hold:
            break
        case .increase:
            if let acknowledged, acknowledged > linkCapacity.upperBoundBitsPerSecond { linkCapacity.reset() }
            var increased = bitsPerSecond
            if linkCapacity.hasEstimate {
                increased += additiveIncrease(elapsedSeconds: elapsed)
            } else {
                increased += max(bitsPerSecond * (power(Self.multiplicativeGainPerSecond, elapsed) - 1), 1000 * elapsed)
            }
            if let acknowledged {
                // Do not run away from what is really sent (gcc-02 §5.5: at most 1.5 × R_hat).
                increased = min(increased, max(bitsPerSecond, 1.5 * acknowledged + 10_000))
            }
            bitsPerSecond = increased
        case .decrease:
            let measured = acknowledged ?? bitsPerSecond
            var decreased = Self.beta * measured
            // Already under β × what arrives: the overuse is the queue the last decrease left,
            // still draining, not this rate. β × the link's capacity (its average at overuse, as
            // gcc-02 §5.5 and libwebrtc take it), not its lower bound: that cut a second time to
            // about 0.85 × 0.85 of the link each time a queue took more than one feedback to drain
            // (a 2 Mb/s link sawed between 1.35 and 1.8 Mb/s).
            if decreased > bitsPerSecond, let capacity = linkCapacity.averageKbps {
                decreased = Self.beta * capacity * 1000
            }
            if decreased < bitsPerSecond {
                if acknowledged != nil { linkCapacity.addOveruseSample(bitsPerSecond: measured) }
                bitsPerSecond = decreased
            }
            lastReduction = now
            state = .hold
        }
        bitsPerSecond = min(max(bitsPerSecond, minimum), maximum)
        lastUpdate = now
    }

    /// Loss together with overuse (a bottleneck queue that overflowed): down to β × what the link
    /// delivers now at once, without waiting for the next reduction's turn (gcc-02 §5.5's
    /// decrease, with the rate measured over the queue's build-up only).
    mutating func congestionCut(deliveredBitsPerSecond delivered: Double, at now: MonotonicTime) {
        let decreased = Self.beta * delivered
        guard decreased.isFinite, decreased < bitsPerSecond else { return }
        linkCapacity.addOveruseSample(bitsPerSecond: delivered)
        bitsPerSecond = max(minimum, decreased)
        lastReduction = now
        lastUpdate = now
        state = .hold
    }

    /// Once per round trip (clamped 10…200 ms), or at once when the throughput fell below half.
    private func canReduce(acknowledged: Double?, at now: MonotonicTime) -> Bool {
        guard let lastReduction else { return true }
        let interval = min(max(roundTripTime, .milliseconds(10)), .milliseconds(200))
        if now - lastReduction >= interval { return true }
        if let acknowledged, acknowledged < bitsPerSecond / 2 { return true }
        return false
    }

    /// About one packet per response time (RTT + 100 ms), packets sized from a 30 fps frame.
    private func additiveIncrease(elapsedSeconds: Double) -> Double {
        let responseSeconds = (roundTripTime + .milliseconds(100)).millisecondsDouble / 1000
        let frameBits = bitsPerSecond / 30
        let packetsPerFrame = max(1, (frameBits / Self.expectedPacketBits).rounded(.up))
        let packetBits = frameBits / packetsPerFrame
        return max(4000, packetBits / responseSeconds) * elapsedSeconds
    }
}

/// gcc-02 §5 together: grouping, trendline, detector, rate control.
struct DelayBasedEstimator {
    private(set) var grouper = InterArrivalGrouper()
    private(set) var trendline = TrendlineFilter()
    private(set) var detector = OveruseDetector()
    var rateControl: AIMDRateControl

    init(start: Double, minimum: Double, maximum: Double) {
        rateControl = AIMDRateControl(start: start, minimum: minimum, maximum: maximum)
    }

    /// Feeds the received packets of one feedback (any order: they are sorted by arrival) and
    /// updates the rate once with the strongest signal seen.
    mutating func update(received: [PacketResult], acknowledged: Double?, at now: MonotonicTime) {
        var packets = received.filter { $0.arrivalMicroseconds != nil }
        packets.sort { ($0.arrivalMicroseconds!, $0.sequenceNumber) < ($1.arrivalMicroseconds!, $1.sequenceNumber) }
        var strongest: BandwidthUsage = detector.usage
        var sawDelta = false
        for packet in packets {
            let send = Int64(clamping: packet.sendTime.nanoseconds / 1000)
            guard let deltas = grouper.add(sendMicroseconds: send, arrivalMicroseconds: packet.arrivalMicroseconds!,
                                           bytes: packet.bytes) else { continue }
            trendline.update(deltas)
            let usage = detector.detect(modifiedTrend: trendline.modifiedTrend, trend: trendline.trend,
                                        sendDeltaMilliseconds: deltas.sendDeltaMilliseconds,
                                        deltaCount: trendline.deltaCount, nowMilliseconds: deltas.arrivalMilliseconds)
            if !sawDelta { strongest = usage; sawDelta = true }
            if usage == .overusing { strongest = .overusing }
            else if usage == .underusing, strongest == .normal { strongest = .underusing }
        }
        rateControl.update(usage: strongest, acknowledged: acknowledged, at: now)
    }
}

/// base^exponent for base > 0, without Foundation or the C library.
func power(_ base: Double, _ exponent: Double) -> Double {
    guard base > 0 else { return 0 }
    return exponential(exponent * naturalLogarithm(base))
}

func naturalLogarithm(_ value: Double) -> Double {
    // ln x = 2 artanh((x − 1)/(x + 1)), series; value > 0.
    guard value > 0 else { return -.infinity }
    var x = value, shift = 0.0
    while x > 2 { x /= 2; shift += 1 }
    while x < 0.5 { x *= 2; shift -= 1 }
    let y = (x - 1) / (x + 1), y2 = y * y
    var term = y, sum = 0.0
    var n = 1.0
    while n < 60 {
        sum += term / n
        term *= y2
        n += 2
    }
    return 2 * sum + shift * 0.693_147_180_559_945_3
}

func exponential(_ value: Double) -> Double {
    // e^x = (e^(x/2^k))^(2^k) with a Taylor series for the small part.
    guard value.isFinite else { return value > 0 ? .infinity : 0 }
    var k = 0, x = value
    while abs(x) > 0.5 { x /= 2; k += 1 }
    var term = 1.0, sum = 1.0
    for n in 1...20 {
        term *= x / Double(n)
        sum += term
    }
    for _ in 0..<k { sum *= sum }
    return sum
}
