import RTCBase

/// What the speaker played and when (full-duplex talkback's echo reference, issue 17), sans-IO: the
/// player appends each frame with the time its first sample leaves the speaker; the microphone's
/// side asks for the samples that were playing over the span it captured, a little early (`lead`),
/// so that the echo in the microphone lies after them within the canceller's filter. Silence where
/// nothing played. Holds the last `capacity` samples (mono, `sampleRate`).
public struct FarEndReference: Sendable {
    public let sampleRate: Int
    public let capacity: Int
    /// The reference starts this long before the captured span (the filter absorbs it).
    public var lead: Duration

    private var samples: [Int16]
    /// Time of `samples[0]` (nil: nothing played yet).
    private var start: MonotonicTime?

    public init(sampleRate: Int = 48_000, seconds: Int = 2, lead: Duration = .milliseconds(20)) {
        self.sampleRate = sampleRate
        capacity = sampleRate * seconds
        self.lead = lead
        samples = []
        samples.reserveCapacity(capacity)
    }

    /// The speaker plays `frame` from `time` on. A frame that does not follow on (a pause, or the
    /// player's clock estimate moved) starts the timeline over at its own time when the jump is
    /// larger than a frame; small differences are absorbed, keeping the samples contiguous.
    public mutating func played(_ frame: [Int16], at time: MonotonicTime) {
        if let start {
            let end = start + duration(of: samples.count)
            let jump = time - end
            if jump > .milliseconds(40) || jump < .milliseconds(-40) {
                if jump > .zero, jump < .seconds(1) {
                    // A pause: silence in between, the timeline carries on.
                    samples.append(contentsOf: repeatElement(0, count: count(in: jump)))
                } else {
                    samples.removeAll(keepingCapacity: true)
                    self.start = time
                }
            }
        } else {
            start = time
        }
        samples.append(contentsOf: frame)
        if samples.count > capacity {
            let drop = samples.count - capacity
            samples.removeFirst(drop)
            start = start.map { $0 + duration(of: drop) }
        }
    }

    /// `count` samples of what was playing from `time − lead` on (zeros outside what is known).
    public func reference(capturedAt time: MonotonicTime, count: Int) -> [Int16] {
        var out = [Int16](repeating: 0, count: count)
        guard let start else { return out }
        let from = time - lead
        let offset = from >= start ? self.count(in: from - start) : -self.count(in: start - from)
        for index in 0..<count {
            let source = offset + index
            if source >= 0, source < samples.count { out[index] = samples[source] }
        }
        return out
    }

    /// Whether anything audible played over `[time − lead, time + span)`.
    public func hasAudio(capturedAt time: MonotonicTime, span: Int) -> Bool {
        reference(capturedAt: time, count: span).contains { $0 != 0 }
    }

    private func duration(of count: Int) -> Duration { .nanoseconds(Int64(count) * 1_000_000_000 / Int64(sampleRate)) }
    private func count(in duration: Duration) -> Int { Int(duration.nanosecondsClamped * Int64(sampleRate) / 1_000_000_000) }
}
