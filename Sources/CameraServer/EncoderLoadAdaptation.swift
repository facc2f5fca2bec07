import RTCBase

/// `--degradation`: what gives way when the encoder cannot keep up with the configured size and
/// rate on this CPU (libwebrtc calls it the degradation preference).
public enum DegradationPreference: String, Equatable, Sendable, CaseIterable {
    /// Smaller pictures at the configured rate (the default: motion stays smooth).
    case resolution
    /// Fewer frames at the configured size (sharp pictures, e.g. reading a meter).
    case framerate
    /// Size and rate alternately, size first.
    case balanced
    /// Never adapt: frames the encoder cannot take are skipped (freshest frame wins).
    case off
}

/// What the encoder is given: the size x264 codes and the frames per second it is fed.
struct EncodedFormat: Equatable, Sendable, CustomStringConvertible {
    var width: Int
    var height: Int
    var framesPerSecond: Int

    var pixelsPerSecond: Int { width * height * framesPerSecond }
    var frameInterval: Duration { .nanoseconds(1_000_000_000 / Int64(max(1, framesPerSecond))) }
    var description: String { "\(width)x\(height)@\(framesPerSecond)" }
}

/// The CPU half of libwebrtc's adaptation (its "overuse frame detector"), as a value on the caller's
/// clock: it is told how long each frame took on the video thread (scaling and encoding, wall
/// time, so a cgroup quota's throttling counts) and which frames the source had but the encoder
/// could not take, and answers when the encoded format should change. It also picks the frames a
/// lower rate keeps (`admits`).
///
/// - usage: the mean processing time of the frames of the last `window` over the current frame
///   interval (1.0: the thread is busy all the time).
/// - behind: fewer frames encoded than `keptShare` of those the current rate should have kept of
///   what the source had (skipped ones included; a camera that slows down by itself, in low light,
///   has no gaps, so that is not counted against the encoder); or frames waiting, on average,
///   more than `queuedIntervals` frame intervals between capture and the start of their processing
///   (a camera's buffers filling up behind a slow encoder).
/// - Down: once the current format has run a whole `window`, usage above `overuse` (or behind)
///   steps down the ladder, as far as the pixel rate predicts (usage × pixels per second of the
///   step / of now) gets under `overuse`, and at least one step.
/// - Up: usage below `underuse` for `upHold` at a smaller format, and the next larger one predicted
///   under `predictedCeiling`, steps up one. Under a CPU quota (a cgroup's, `processLoad`) the
///   process's share of its limit, scaled the same way, must be predicted under it too: there
///   wall time stays short until the quota runs out, so it alone cannot tell the room left. A step up that is undone within `flapWindow` doubles
///   `upHold` (up to `longestUpHold`), so a format that does not fit is not tried every 10 s.
struct EncoderLoadAdaptation: Sendable {
    struct Thresholds: Sendable {
        var window: Duration = .seconds(2)
        var overuse = 0.85
        var keptShare = 0.8
        var queuedIntervals = 3.0
        var underuse = 0.5
        var predictedCeiling = 0.7
        var upHold: Duration = .seconds(10)
        var longestUpHold: Duration = .seconds(160)
        var flapWindow: Duration = .seconds(30)

        /// Never overused, behind or calm: only `step(to:)` changes the format (tests).
        static var onlyAskedSteps: Thresholds {
            var thresholds = Thresholds()
            thresholds.overuse = .infinity
            thresholds.queuedIntervals = .infinity
            thresholds.keptShare = 0
            thresholds.underuse = -1
            return thresholds
        }
    }

    struct Change: Equatable, Sendable {
        var from: EncodedFormat
        var to: EncodedFormat
        var reason: String
    }

    let preference: DegradationPreference
    let thresholds: Thresholds
    /// Largest first: the configured format, then the steps down.
    let ladder: [EncodedFormat]
    private(set) var level = 0
    /// Why the format is what it is (nil: never changed).
    private(set) var reason: String?
    private(set) var changes = 0
    /// The last windowed usage (nil before the first frame of a format).
    private(set) var usage: Double?
    /// The mean time from capture to the encoder's output over the window (nil: none yet).
    private(set) var captureToEncoded: Duration?
    private(set) var currentUpHold: Duration
    /// The share of its CPU limit (a cgroup quota) the whole process used lately; nil: no limit.
    private(set) var processShare: Double?

    private var samples: [(at: MonotonicTime, processing: Duration, lag: Duration)] = []
    /// Frames the source had in the window: (time, kept by the rate or not, or skipped unseen).
    private var sourceFrames: [(at: MonotonicTime, kind: SourceFrame)] = []
    private var decimator = FrameRateDecimator()
    private enum SourceFrame { case admitted, leftOut, skipped }
    private var formatSince: MonotonicTime?
    private var calmSince: MonotonicTime?
    private var lastStepUp: MonotonicTime?

    var configured: EncodedFormat { ladder[0] }
    var current: EncodedFormat { ladder[level] }

    init(configured: EncodedFormat, preference: DegradationPreference, thresholds: Thresholds = Thresholds()) {
        self.preference = preference
        self.thresholds = thresholds
        ladder = Self.ladder(from: configured, preference: preference)
        currentUpHold = thresholds.upHold
    }

    /// The steps for a preference: sizes at 1, 2/3, 1/2, 1/3, 1/4 of the configured one (even
    /// numbers, none under 160x120), rates at 1, 2/3, 1/2, 1/3 of the configured one (none under 5
    /// fps); `balanced` takes a size step, then a rate step, and so on.
    static func ladder(from configured: EncodedFormat, preference: DegradationPreference) -> [EncodedFormat] {
        let fractions = [(1, 1), (2, 3), (1, 2), (1, 3), (1, 4)]
        var sizes: [(Int, Int)] = []
        for (numerator, denominator) in fractions {
            let width = configured.width * numerator / denominator & ~1
            let height = configured.height * numerator / denominator & ~1
            guard sizes.isEmpty || (width >= 160 && height >= 120) else { break }
            if sizes.last.map({ $0 != (width, height) }) ?? true { sizes.append((width, height)) }
        }
        var rates: [Int] = []
        for (numerator, denominator) in fractions.dropLast() {
            let rate = configured.framesPerSecond * numerator / denominator
            guard rates.isEmpty || rate >= 5 else { break }
            if rates.last != rate { rates.append(rate) }
        }
        let fullRate = configured.framesPerSecond
        switch preference {
        case .off:
            return [configured]
        case .resolution:
            return sizes.map { EncodedFormat(width: $0.0, height: $0.1, framesPerSecond: fullRate) }
        case .framerate:
            return rates.map { EncodedFormat(width: configured.width, height: configured.height, framesPerSecond: $0) }
        case .balanced:
            var steps = [configured]
            var (size, rate) = (0, 0)
            while size + 1 < sizes.count || rate + 1 < rates.count {
                if size + 1 < sizes.count && (size <= rate || rate + 1 >= rates.count) { size += 1 } else { rate += 1 }
                steps.append(EncodedFormat(width: sizes[size].0, height: sizes[size].1, framesPerSecond: rates[rate]))
            }
            return steps
        }
    }

    /// A frame was encoded at `now`; it took `processing` on the video thread, and `lag` since it
    /// was captured (nil: the same as `processing`). Returns the change to make before the next
    /// frame (with a keyframe), if any.
    mutating func frameEncoded(processing: Duration, lag: Duration? = nil, at now: MonotonicTime) -> Change? {
        let since = formatSince ?? now
        formatSince = since
        samples.append((now, processing, max(lag ?? processing, processing)))
        forget(before: now - thresholds.window)
        let interval = current.frameInterval.millisecondsDouble
        let mean = samples.reduce(0.0) { $0 + $1.processing.millisecondsDouble } / Double(samples.count)
        let meanLag = samples.reduce(0.0) { $0 + $1.lag.millisecondsDouble } / Double(samples.count)
        let measured = mean / interval
        usage = measured
        captureToEncoded = .nanoseconds(Int64(meanLag * 1_000_000))
        guard now - since >= thresholds.window else { return nil }   // not yet a whole window of this format

        let skipped = sourceFrames.count(where: { $0.kind == .skipped })
        let wanted = Double(sourceFrames.count) * Double(current.framesPerSecond) / Double(configured.framesPerSecond)
        let queued = (meanLag - mean) / interval
        let behind = skipped > 0 && Double(samples.count) < thresholds.keptShare * wanted || queued > thresholds.queuedIntervals
        if measured > thresholds.overuse || behind, level + 1 < ladder.count {
            var target = level + 1
            while target + 1 < ladder.count, predictedUsage(measured, at: target) > thresholds.overuse { target += 1 }
            let why = queued > thresholds.queuedIntervals
                ? "frames wait \(Self.milliseconds(meanLag - mean)) between capture and the encoder (\(Self.milliseconds(interval)) frame interval), encode time \(Self.percent(measured)) of it"
                : behind
                ? "the encoder fell behind: \(samples.count) frames encoded in \(Self.seconds(thresholds.window)) of \(Int(wanted.rounded())) wanted, \(skipped) skipped, encode time \(Self.percent(measured)) of the \(Self.milliseconds(interval)) frame interval"
                : "encode time \(Self.percent(measured)) of the \(Self.milliseconds(interval)) frame interval over \(Self.seconds(thresholds.window)) (budget \(Self.percent(thresholds.overuse)))"
            if let lastStepUp, now - lastStepUp < thresholds.flapWindow {
                currentUpHold = min(currentUpHold * 2, thresholds.longestUpHold)
            }
            return move(to: target, at: now, reason: why)
        }

        if measured < thresholds.underuse {
            calmSince = calmSince ?? now
        } else {
            calmSince = nil
        }
        if level > 0, let calmSince, now - calmSince >= currentUpHold {
            let predicted = predictedUsage(measured, at: level - 1)
            let predictedProcessShare = processShare.map { predictedUsage($0, at: level - 1) }
            if predicted < thresholds.predictedCeiling, (predictedProcessShare ?? 0) < thresholds.predictedCeiling {
                lastStepUp = now
                let quota = processShare.map { ", \(Self.percent($0)) of the CPU quota used" } ?? ""
                return move(to: level - 1, at: now,
                            reason: "room again: encode time \(Self.percent(measured)) of the frame interval for \(Self.seconds(now - calmSince))\(quota), about \(Self.percent(predicted)) expected at \(ladder[level - 1])")
            }
        }
        return nil
    }

    /// The whole process used `share` of its CPU limit over the last second or so (nil: it has
    /// no limit, wall time alone decides).
    mutating func processLoad(share: Double?) {
        processShare = share
    }

    /// The source had a frame at `now` that the encoder could not take (it was still busy).
    mutating func frameSkipped(at now: MonotonicTime) {
        sourceFrames.append((now, .skipped))
    }

    /// Whether the frame the source has at `now` goes to the encoder at the current rate (frames
    /// are left out evenly when the rate was lowered). Every frame the source gives is asked about.
    mutating func admits(frameAt now: MonotonicTime) -> Bool {
        let admitted = decimator.admits(at: now, framesPerSecond: current.framesPerSecond,
                                        sourceFramesPerSecond: configured.framesPerSecond)
        sourceFrames.append((now, admitted ? .admitted : .leftOut))
        return admitted
    }

    /// Nobody watches: what was measured no longer says anything about the next viewer's frames.
    /// The format stays; measuring starts again with the next frame.
    mutating func pause() {
        samples.removeAll()
        sourceFrames.removeAll()
        formatSince = nil
        calmSince = nil
        usage = nil
        captureToEncoded = nil
    }

    /// Moves to ladder step `target` now, as a measured overuse or room would (tests and
    /// benchmarks that need a step at a known frame).
    mutating func step(to target: Int, at now: MonotonicTime, reason: String) -> Change? {
        guard target != level, ladder.indices.contains(target) else { return nil }
        return move(to: target, at: now, reason: reason)
    }

    /// Usage at ladder step `target` if processing time follows the pixel rate.
    func predictedUsage(_ measured: Double, at target: Int) -> Double {
        // Processing time per frame follows the pixels per frame, the interval 1/fps: usage
        // follows the pixels per second.
        measured * Double(ladder[target].pixelsPerSecond) / Double(current.pixelsPerSecond)
    }

    private mutating func move(to target: Int, at now: MonotonicTime, reason: String) -> Change {
        let change = Change(from: current, to: ladder[target], reason: reason)
        level = target
        self.reason = reason
        changes += 1
        pause()
        formatSince = now
        return change
    }

    private mutating func forget(before start: MonotonicTime) {
        if let keep = samples.firstIndex(where: { $0.at >= start }) { samples.removeFirst(keep) } else { samples.removeAll() }
        if let keep = sourceFrames.firstIndex(where: { $0.at >= start }) { sourceFrames.removeFirst(keep) } else { sourceFrames.removeAll() }
    }

    private static func percent(_ share: Double) -> String { "\(Int((share * 100).rounded())) %" }
    private static func milliseconds(_ value: Double) -> String { "\(Int(value.rounded())) ms" }
    private static func seconds(_ duration: Duration) -> String { "\(Int((duration.millisecondsDouble / 1000).rounded())) s" }
}

/// Takes frames from a source at its own rate so that about `framesPerSecond` of them a second go
/// on, evenly (30 → 20 keeps two of three, 30 → 15 every second one); a frame a little early
/// (under half a source interval) still counts as on time, so jitter does not drop extra ones.
struct FrameRateDecimator: Sendable {
    private var nextDue: MonotonicTime?

    mutating func admits(at time: MonotonicTime, framesPerSecond: Int, sourceFramesPerSecond: Int) -> Bool {
        guard framesPerSecond < sourceFramesPerSecond, framesPerSecond > 0 else {
            nextDue = nil
            return true
        }
        let interval = Duration.nanoseconds(1_000_000_000 / Int64(framesPerSecond))
        let tolerance = Duration.nanoseconds(500_000_000 / Int64(max(1, sourceFramesPerSecond)))
        guard let due = nextDue else {
            nextDue = time + interval
            return true
        }
        guard time + tolerance >= due else { return false }
        // Keep the cadence, unless the source paused longer than an interval: then start from now.
        nextDue = time - due > interval ? time + interval : due + interval
        return true
    }
}
