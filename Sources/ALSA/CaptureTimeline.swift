import RTCBase

/// Places the chunks of a capture stream on CLOCK_MONOTONIC and on the stream's sample clock.
///
/// Capture times stay on the sample clock: between two chunks the time advances by exactly their
/// frames over the rate, so RTP timestamps derived from capture times step by exactly the frame
/// count. The clock's offset against CLOCK_MONOTONIC comes from per-read estimates of when a chunk's
/// first frame was captured (the time a read that had to wait returned, minus the frames read over
/// the rate). Scheduling can only make a read return later than its data arrived, so estimates err
/// late, never early, and the timeline follows their lower envelope:
/// - while it settles (the first `correctionWindowFrames` after the start or a discontinuity), an
///   estimate earlier than the timeline moves it down at once (never below the previous chunk's time
///   plus half its duration, so capture times always increase), and if every estimate of that window
///   was late it moves up to the earliest at its end;
/// - after that it is corrected once per window, by slewing one frame per chunk (an RTP timestamp
///   step one sample longer or shorter; about 2 ms per second at 10 ms chunks, far more than any
///   crystal's drift): down when the window's earliest estimate is more than `slewDeadband` before
///   the timeline, up when every estimate of the last `lowerEnvelopeWindows` windows was more than
///   that after it;
/// - an error beyond `jumpLimit` (a whole window late, or one estimate early) moves it in one step:
///   a sound server's latency changed.
/// Chunks without a trustworthy estimate (a read that did not wait) are placed on the clock as they
/// are. Frames dropped on purpose (`skip`) keep their place on the sample clock. After a discontinuity
/// with an unknown loss the timeline re-anchors on the estimate, and the sample position skips the
/// frames that were lost (estimated from the time elapsed), so positions keep following real time.
///
/// Pure value type: no clock reads, no I/O (the capture passes the estimates in).
public struct CaptureTimeline: Sendable, Equatable {
    public let sampleRate: UInt32
    public let correctionWindowFrames: UInt64
    /// Window errors smaller than this are left alone (1 ms).
    public let slewDeadband: Duration
    /// Errors larger than this are corrected in one step instead of a slew (50 ms).
    public let jumpLimit: Duration

    /// Capture time of the frame at `anchorPosition` (before `slewFrames`).
    private var anchorTime = MonotonicTime.zero
    private var anchorPosition: UInt64 = 0
    /// Frames the timeline has been slewed since the anchor: positive moves capture times later.
    private var slewFrames: Int64 = 0
    /// Where the slew is going, one frame per chunk.
    private var targetSlewFrames: Int64 = 0
    /// The smallest estimate error (in frames of slew from the anchor) of each of the last windows.
    private var recentWindowMinima: [Int64] = []
    /// Moving up needs every estimate of this many windows late: then the lower envelope of a sound
    /// server's delivery, whose arrival times saw-tooth (measured with PulseAudio's null sink: 2.2 ms
    /// later each second for 6–11 s, then 16–20 ms back at once), stays flat.
    public static let lowerEnvelopeWindows = 20
    private var started = false
    /// Within the first window after the start or a discontinuity: early estimates move the timeline
    /// down at once.
    private var settling = true
    /// While settling: the position where settling ends (a window after the start or discontinuity).
    private var settledAt: UInt64 = 0
    /// Position of the first frame after the last placed (or skipped) chunk.
    private var nextPosition: UInt64 = 0
    private var lastTime = MonotonicTime.zero
    private var lastFrames = 0
    private var windowStart: UInt64 = 0
    /// The smallest (estimate − timeline before any slew) of the current window, nanoseconds; nil: no
    /// estimate yet.
    private var windowSmallestError: Int64?
    /// Corrections made in one step after settling (the timeline jumped).
    public private(set) var jumps = 0
    /// Frames slewed in all (either direction).
    public private(set) var framesSlewed: UInt64 = 0

    /// - Parameter correctionWindowFrames: how many frames of estimates one correction looks at
    ///   (default one second).
    public init(sampleRate: UInt32, correctionWindowFrames: UInt64? = nil, slewDeadband: Duration = .milliseconds(1),
                jumpLimit: Duration = .milliseconds(50)) {
        precondition(sampleRate > 0, "sample rate must be positive")
        self.sampleRate = sampleRate
        self.correctionWindowFrames = correctionWindowFrames ?? UInt64(sampleRate)
        self.slewDeadband = slewDeadband
        self.jumpLimit = jumpLimit
    }

    /// Places a chunk of `frames` frames whose first frame the caller estimates was captured at
    /// `estimate` (nil: the read gave no trustworthy estimate; the chunk just follows the previous
    /// one). `afterDiscontinuity`: an unknown number of frames was lost just before this chunk (an
    /// estimate is then required to re-anchor; without one the chunk follows on).
    public mutating func place(frames: Int, estimate: MonotonicTime?, afterDiscontinuity: Bool)
        -> (position: UInt64, captureTime: MonotonicTime)
    {
        guard started else {
            started = true
            return anchor(frames: frames, position: 0, time: estimate ?? .zero, settling: true, restartSettling: true)
        }
        if afterDiscontinuity, let estimate {
            let gap = (estimate - time(at: nextPosition)).nanosecondsClamped
            let lost = gap > 0 ? framesIn(nanoseconds: gap) : 0
            let time = max(estimate, lastTime + .nanoseconds(1))
            return anchor(frames: frames, position: nextPosition + lost, time: time, settling: true, restartSettling: true)
        }
        stepTowardTargetSlew()
        let position = nextPosition
        let predicted = time(at: position)
        let frameNanoseconds = max(nanoseconds(frames: 1), 1)
        if let estimate {
            let error = (estimate - predicted).nanosecondsClamped
            if error < 0, settling || -error > jumpLimit.nanosecondsClamped {
                // Data earlier than the timeline says: the timeline is late; follow the estimate down,
                // but keep capture times increasing.
                let floor = lastTime + .nanoseconds(nanoseconds(frames: UInt64(lastFrames)) / 2)
                let placedTime = max(estimate, floor)
                if !settling { jumps += 1 }
                return anchor(frames: frames, position: position, time: placedTime, settling: settling)
            }
            // Against the timeline before any slew: independent of the slew applied so far.
            windowSmallestError = min(windowSmallestError ?? .max, error + slewFrames * frameNanoseconds)
        }
        if settling ? position >= settledAt : position - windowStart >= correctionWindowFrames {
            defer {
                windowStart = position
                windowSmallestError = nil
            }
            guard let smallest = windowSmallestError else {
                advance(frames: frames, position: position, time: predicted)
                return (position, predicted)
            }
            let lateness = smallest - slewFrames * frameNanoseconds
            if settling, lateness > 0 {
                // Settled on estimates that were all late: move up to the earliest of them.
                return anchor(frames: frames, position: position, time: predicted + .nanoseconds(lateness), settling: false)
            }
            if !settling, lateness > jumpLimit.nanosecondsClamped {
                // Late for a whole window by more than a slew should take: the source's latency grew.
                jumps += 1
                return anchor(frames: frames, position: position, time: predicted + .nanoseconds(lateness), settling: false)
            }
            settling = false
            let smallestFrames = smallest / frameNanoseconds
            recentWindowMinima.append(smallestFrames)
            if recentWindowMinima.count > Self.lowerEnvelopeWindows { recentWindowMinima.removeFirst() }
            let deadband = slewDeadband.nanosecondsClamped / frameNanoseconds
            let envelope = recentWindowMinima.min() ?? smallestFrames
            if smallestFrames < targetSlewFrames - deadband {
                // Estimates earlier than the timeline: it is late (data cannot be read before it exists).
                targetSlewFrames = smallestFrames
            } else if envelope > targetSlewFrames + deadband {
                // Every estimate of the last windows was late: the device runs slower than CLOCK_MONOTONIC.
                targetSlewFrames = envelope
            }
        }
        advance(frames: frames, position: position, time: predicted)
        return (position, predicted)
    }

    /// `frames` frames after the last chunk were read and dropped: they keep their place on the sample
    /// clock (the next chunk's position and time come after them).
    public mutating func skip(frames: Int) {
        guard started else { return }
        nextPosition += UInt64(max(frames, 0))
    }

    /// The capture time the timeline predicts for the frame at `position`.
    public func time(at position: UInt64) -> MonotonicTime {
        let frames = Int64(clamping: position) - Int64(clamping: anchorPosition) + slewFrames
        if frames >= 0 { return anchorTime + .nanoseconds(nanoseconds(frames: UInt64(frames))) }
        return anchorTime - .nanoseconds(nanoseconds(frames: UInt64(-frames)))
    }

    /// Position of the first frame after the last chunk placed or skipped.
    public var endPosition: UInt64 { nextPosition }

    /// A first chunk was placed.
    public var isStarted: Bool { started }

    /// Moves the slew one frame toward its target (one frame per chunk).
    private mutating func stepTowardTargetSlew() {
        guard slewFrames != targetSlewFrames else { return }
        slewFrames += slewFrames < targetSlewFrames ? 1 : -1
        framesSlewed += 1
    }

    /// Re-anchors the timeline at `position`. `settling`: early estimates still move it down at
    /// once; `restartSettling`: that lasts for the next window (after the start or a discontinuity;
    /// a settling timeline moving down keeps its end of settling).
    private mutating func anchor(frames: Int, position: UInt64, time: MonotonicTime, settling: Bool,
                                 restartSettling: Bool = false) -> (position: UInt64, captureTime: MonotonicTime)
    {
        if restartSettling { settledAt = position + correctionWindowFrames }
        anchorTime = time
        anchorPosition = position
        slewFrames = 0
        targetSlewFrames = 0
        recentWindowMinima = []
        self.settling = settling
        windowStart = position
        windowSmallestError = nil
        advance(frames: frames, position: position, time: time)
        return (position, time)
    }

    private mutating func advance(frames: Int, position: UInt64, time: MonotonicTime) {
        nextPosition = position + UInt64(max(frames, 0))
        lastTime = time
        lastFrames = max(frames, 0)
    }

    /// `frames / sampleRate` in nanoseconds, without overflow for any realistic distance.
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
