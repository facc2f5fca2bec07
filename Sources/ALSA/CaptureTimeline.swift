import RTCBase

/// Places the chunks of a capture stream on CLOCK_MONOTONIC and on the stream's sample clock.
///
/// Every read gives an estimate of when its first frame was captured (the time the read returned
/// minus the frames still waiting and the frames just read, over the rate). Scheduling can only make
/// a read return later than its data arrived, so estimates err late, never early. The timeline
/// advances by exactly `frames / sampleRate` per chunk and follows the lower envelope of the
/// estimates:
/// - an estimate earlier than the timeline moves the timeline down at once (never below the previous
///   chunk's time plus half its duration, so capture times always increase);
/// - when every estimate over `correctionWindowFrames` was later than the timeline, it moves up by
///   the smallest lateness seen (the device clock runs slower than CLOCK_MONOTONIC, or its latency
///   grew).
/// After a discontinuity the timeline re-anchors on the estimate, and the sample position skips the
/// frames that were lost (estimated from the time elapsed), so RTP timestamps derived from positions
/// keep advancing with real time across the gap.
///
/// Pure value type: no clock reads, no I/O (the capture passes the estimates in).
public struct CaptureTimeline: Sendable, Equatable {
    public let sampleRate: UInt32
    public let correctionWindowFrames: UInt64

    /// Capture time of the frame at `anchorPosition`.
    private var anchorTime = MonotonicTime.zero
    private var anchorPosition: UInt64 = 0
    private var started = false
    /// Position of the first frame after the last placed chunk.
    private var nextPosition: UInt64 = 0
    private var lastTime = MonotonicTime.zero
    private var lastFrames = 0
    private var windowStart: UInt64 = 0
    private var windowSmallestLateness = Int64.max

    /// - Parameter correctionWindowFrames: how long estimates must all be late before the timeline
    ///   moves up (default one second).
    public init(sampleRate: UInt32, correctionWindowFrames: UInt64? = nil) {
        precondition(sampleRate > 0, "sample rate must be positive")
        self.sampleRate = sampleRate
        self.correctionWindowFrames = correctionWindowFrames ?? UInt64(sampleRate)
    }

    /// Places a chunk of `frames` frames whose first frame the caller estimates was captured at
    /// `estimate`. `afterDiscontinuity`: frames were lost just before this chunk.
    public mutating func place(frames: Int, estimate: MonotonicTime, afterDiscontinuity: Bool)
        -> (position: UInt64, captureTime: MonotonicTime)
    {
        guard started else {
            started = true
            return anchor(frames: frames, position: 0, time: estimate)
        }
        if afterDiscontinuity {
            let gap = (estimate - time(at: nextPosition)).nanosecondsClamped
            let lost = gap > 0 ? framesIn(nanoseconds: gap) : 0
            let time = max(estimate, lastTime + .nanoseconds(1))
            return anchor(frames: frames, position: nextPosition + lost, time: time)
        }
        let position = nextPosition
        let predicted = time(at: position)
        let lateness = (estimate - predicted).nanosecondsClamped
        if lateness < 0 {
            // Data earlier than the timeline says: the timeline was late; follow the estimate down,
            // but keep capture times increasing.
            let floor = lastTime + .nanoseconds(nanoseconds(frames: UInt64(lastFrames)) / 2)
            return anchor(frames: frames, position: position, time: max(estimate, floor))
        }
        windowSmallestLateness = min(windowSmallestLateness, lateness)
        if position - windowStart >= correctionWindowFrames {
            // Late for a whole window: the timeline is behind the device.
            return anchor(frames: frames, position: position, time: predicted + .nanoseconds(windowSmallestLateness))
        }
        advance(frames: frames, position: position, time: predicted)
        return (position, predicted)
    }

    /// The capture time the timeline predicts for the frame at `position`.
    public func time(at position: UInt64) -> MonotonicTime {
        if position >= anchorPosition {
            return anchorTime + .nanoseconds(nanoseconds(frames: position - anchorPosition))
        }
        return anchorTime - .nanoseconds(nanoseconds(frames: anchorPosition - position))
    }

    private mutating func anchor(frames: Int, position: UInt64, time: MonotonicTime)
        -> (position: UInt64, captureTime: MonotonicTime)
    {
        anchorTime = time
        anchorPosition = position
        windowStart = position
        windowSmallestLateness = .max
        advance(frames: frames, position: position, time: time)
        return (position, time)
    }

    private mutating func advance(frames: Int, position: UInt64, time: MonotonicTime) {
        nextPosition = position + UInt64(max(frames, 0))
        lastTime = time
        lastFrames = max(frames, 0)
    }

    /// `frames / sampleRate` in nanoseconds, without overflow for any realistic distance (the anchor
    /// moves at least every correction window or discontinuity).
    private func nanoseconds(frames: UInt64) -> Int64 {
        let rate = UInt64(sampleRate)
        let seconds = frames / rate
        let remainder = frames % rate
        return Int64(clamping: seconds &* 1_000_000_000 &+ remainder * 1_000_000_000 / rate)
    }

    private func framesIn(nanoseconds: Int64) -> UInt64 {
        let value = UInt64(nanoseconds)
        let seconds = value / 1_000_000_000
        let remainder = value % 1_000_000_000
        return seconds * UInt64(sampleRate) + (remainder * UInt64(sampleRate) + 500_000_000) / 1_000_000_000
    }
}
