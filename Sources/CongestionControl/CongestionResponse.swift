import RTCBase

/// What a viewer's sender does when its link is congested (issue 24): a rate step down into a deep
/// queue. Sans-IO; the owner calls `update` after each estimator input and after sending, and reads
/// the pacing rate, the rate its encoder should follow, and how long video may wait in the pacer.
///
/// When the estimator sees congestion (`SendSideBandwidthEstimator.isCongested`), the link's queue
/// is full: whatever leaves the sender beyond what the link delivers is dropped there, resends of
/// what it dropped included, and the picture stands still until they get through. So, until what
/// the pacer holds has left:
/// - the pacer sends at what the link delivered (× `pacingShare`; less while the link's own queue
///   is deep and no resend waits: `linkQueueDrainTime`), not at 2.5 × the estimate: what
///   the encoder made before it followed the cut, and the resends, wait in the pacer, not in the
///   link's queue where they would be lost;
/// - the encoder follows the estimate less what the pacer holds spread over `drainTime` (at least
///   `minimumEncoderShare` of it), so that backlog drains in about that time;
/// - video waits up to `staleVideoDuringDrain` before the owner gives up on it (dropping it costs
///   a keyframe at the new rate, a longer freeze than sending it late).
public struct CongestionResponse: Sendable {
    public var pacingShare = 0.9
    /// While the link's own queue is deep (the owner passes the estimator's
    /// `projectedLinkQueueDelay`), the pacer goes slower still, so that queue empties in about this
    /// long: resends (first in the pacer) then reach the receiver without waiting behind the old
    /// rate's packets, and are not dropped at a full queue again. Never under `minimumPacingShare`
    /// of the delivery rate. Not while resends wait in the pacer: slowing them down only makes them
    /// later (what is in the link's queue ahead of them stays ahead of them). 250 ms with the
    /// projected queue and resends at `pacingShare`: the step at 12 phases of the keyframe cycle
    /// froze 244-465 ms (KeyframeSchedule holding the periodic IDR); 500 ms with the last reported
    /// queue and resends slowed too: 285-523 ms.
    public var linkQueueDrainTime: Duration = .milliseconds(250)
    public var minimumPacingShare = 0.4
    /// With the link's queue under this, the pacer goes faster than the delivery rate measured at
    /// the episode's start, up to `emptyLinkExtraShare` more of it with no queue at all: an empty
    /// queue says the link passes more than that. Once the link's queue (AIMD's own probing near its
    /// rate, a keyframe) raised the delay with a few random losses, the episode paced at 0.9 of
    /// what the sender had been sending, with the link's queue empty all along, and the encoder was
    /// held 0.5-0.8 Mb/s under a 2 Mb/s link for 2 s while the pacer's backlog drained. Faster only
    /// until the link's queue shows again: after a rate step it is deep until the backlog is gone.
    public var emptyLinkQueue: Duration = .milliseconds(20)
    public var emptyLinkExtraShare = 0.3
    public var drainTime: Duration = .seconds(1)
    /// An encoder follows a cut within a few frames; a source that, from this long into an episode,
    /// still gives the pacer more than `sourceOvershoot` × the rate it was asked for cannot (a
    /// passthrough camera or file: its rate is the stream's own). Then the pacer sends at least what
    /// the source gives it, plus the backlog over `drainTime`: holding video the source will never
    /// slow down for only grows the backlog until it goes stale (LossyPassthroughTests: 7-8 s of a
    /// 600 kb/s file in the pacer at 250-330 kb/s, on a lossy link with no queue at all).
    public var sourceFollowTime: Duration = .milliseconds(500)
    public var sourceOvershoot = 1.5
    /// The source's rate is measured over this long.
    public var sourceRateWindow: Duration = .seconds(1)
    public var minimumEncoderShare = 0.5
    public var staleVideoDuringDrain: Duration = .milliseconds(1500)
    /// After an episode began, the longer stale limit holds at most this long (a link that stays
    /// below the stream gets the owner's normal limit back).
    public var drainGrace: Duration = .seconds(3)

    /// The video source follows the encoder rate asked of it (an encoder). False for a source whose
    /// rate is the stream's own (a passthrough camera, file or command): holding its video in the
    /// pacer then only grows a backlog it never slows down for, so there is no episode at all
    /// (pacing and the stale limit stay as outside one). In the VM's lossy test (a 1 Mb/s file,
    /// netem 10 % loss, TCG's stalls) episodes read from the guest's stalls held it, and Chromium's
    /// round trip went to 1-3.6 s, gaps to 7.8 s, where main's sender kept it at 65-180 ms.
    public var holdsVideo = true

    /// The link's delivery rate the pacer follows (nil: not draining).
    public private(set) var deliveryBitsPerSecond: Int?
    public private(set) var episodeStart: MonotonicTime?
    /// The link's queueing delay at the latest update (the estimator's `projectedLinkQueueDelay`).
    public private(set) var linkQueueDelay: Duration?

    /// What comes into the pacer is more than the encoder was asked for: x264's rate control takes
    /// 0.5-1 s to come down to a cut (its VBV buffer holds half a second), resends go out in copies
    /// (PeerSession: up to three for a first resend), RTX and header bytes. With the encoder asked
    /// for the estimate less the backlog over `drainTime` alone, that surplus held the backlog where
    /// the two balanced (the interop test's 5 % loss: 35-51 KB, its oldest 194-328 ms, for the rest
    /// of the run, the encoder 0.4 Mb/s under the link). So every `correctionWindow` the backlog's
    /// lowest point (the moment before a frame comes) is compared with where draining over
    /// `drainTime` would have taken the previous one, and `correctionGain` of what stayed above that
    /// is taken off the encoder's rate too (`inflowSurplusBitsPerSecond`): an integral term, reset
    /// with each episode. Half of it each half second: all of it overshot after x264's lag (the
    /// encoder at 0.7 Mb/s for a second under a 2 Mb/s link).
    public var correctionWindow: Duration = .milliseconds(500)
    public var correctionGain = 0.5
    /// What came into the pacer beyond the drain's plan, bits/s (see `correctionWindow`).
    public private(set) var inflowSurplusBitsPerSecond = 0.0
    private var correctionWindowStart: MonotonicTime?
    private var windowLowestBacklog: Int?
    private var previousLowestBacklog: Int?

    /// (time, video bytes the pacer was given so far), oldest first, over `sourceRateWindow`.
    private var sourceSamples: [(time: MonotonicTime, bytes: Int)] = []
    private var latestBacklogBytes = 0

    public init() {}

    /// What the source gave the pacer over `sourceRateWindow` (from `after` on), bits/s; nil before
    /// 200 ms of it were seen.
    public func sourceBitsPerSecond(after: MonotonicTime? = nil) -> Int? {
        let start = after ?? .zero
        guard let first = sourceSamples.first(where: { $0.time >= start }),
              let last = sourceSamples.last, last.time - first.time >= .milliseconds(200) else { return nil }
        let seconds = (last.time - first.time).millisecondsDouble / 1000
        return Int(Double(last.bytes - first.bytes) * 8 / seconds)
    }

    public var isDraining: Bool { deliveryBitsPerSecond != nil }

    /// `backlogBytes`: media (video and resends) waiting in the pacer.
    /// `videoBytesEnqueued`: the pacer's `enqueuedBytes(.video)` (nil: the source's own rate is not
    /// watched, and the pacer may hold it back for the whole episode).
    public mutating func update(congested: Bool, deliveredBitsPerSecond: Int?, backlogBytes: Int, linkQueueDelay: Duration?,
                                videoBytesEnqueued: Int? = nil, now: MonotonicTime) {
        self.linkQueueDelay = linkQueueDelay
        latestBacklogBytes = backlogBytes
        guard holdsVideo else {
            deliveryBitsPerSecond = nil
            episodeStart = nil
            return
        }
        if let videoBytesEnqueued {
            if let last = sourceSamples.last, now < last.time + .milliseconds(20) {
                sourceSamples[sourceSamples.count - 1].bytes = videoBytesEnqueued
            } else {
                sourceSamples.append((now, videoBytesEnqueued))
            }
            while sourceSamples.count > 2, now - sourceSamples[1].time >= sourceRateWindow { sourceSamples.removeFirst() }
        }
        if congested {
            if deliveryBitsPerSecond == nil {
                episodeStart = now
                resetCorrection()
            }
            if let deliveredBitsPerSecond { deliveryBitsPerSecond = deliveredBitsPerSecond }
            else if deliveryBitsPerSecond == nil { deliveryBitsPerSecond = 0 }
        } else if deliveryBitsPerSecond != nil, backlogBytes <= Self.drainedBytes {
            deliveryBitsPerSecond = nil
            resetCorrection()
        }
        if isDraining { correctInflow(backlogBytes: backlogBytes, now: now) }
    }

    private mutating func resetCorrection() {
        inflowSurplusBitsPerSecond = 0
        correctionWindowStart = nil
        windowLowestBacklog = nil
        previousLowestBacklog = nil
    }

    /// See `correctionWindow`.
    private mutating func correctInflow(backlogBytes: Int, now: MonotonicTime) {
        guard let start = correctionWindowStart else {
            correctionWindowStart = now
            windowLowestBacklog = backlogBytes
            return
        }
        let lowest = min(windowLowestBacklog ?? backlogBytes, backlogBytes)
        windowLowestBacklog = lowest
        guard now - start >= correctionWindow else { return }
        let seconds = (now - start).millisecondsDouble / 1000
        if let previous = previousLowestBacklog {
            let planned = Double(previous) * max(0, 1 - seconds / max(drainTime.millisecondsDouble / 1000, 0.1))
            inflowSurplusBitsPerSecond = max(0, inflowSurplusBitsPerSecond + correctionGain * (Double(lowest) - planned) * 8 / seconds)
        }
        previousLowestBacklog = lowest
        correctionWindowStart = now
        windowLowestBacklog = nil
    }

    /// About one packet left: drained.
    static let drainedBytes = 1500

    /// `resendsWaiting`: resends are queued in the pacer (they go at least at `pacingShare` of the
    /// link's rate whatever its queue: see `linkQueueDrainTime`).
    public func pacingBitsPerSecond(target: Int, normal: Int, resendsWaiting: Bool = false) -> Int {
        guard let delivery = deliveryBitsPerSecond else { return normal }
        let share = resendsWaiting ? max(pacingShare, currentPacingShare) : currentPacingShare
        let pace = Int(Double(max(target, Int(Double(delivery) * pacingShare))) * share / pacingShare)
        return max(pace, sourceFloor(target: target) ?? 0)
    }

    /// A source that did not follow the cut (see `sourceFollowTime`): what it gives the pacer plus
    /// the backlog spread over `drainTime`. Nil for an encoder that followed.
    func sourceFloor(target: Int) -> Int? {
        guard let episodeStart, let source = sourceBitsPerSecond(after: episodeStart + sourceFollowTime) else { return nil }
        // Against the rate planned before the inflow correction: that correction answers an encoder
        // that is late to follow, and must not make one look like a source that never does.
        let asked = encoderBitsPerSecond(target: target, backlogBytes: latestBacklogBytes, correctingInflow: false)
        guard Double(source) > sourceOvershoot * Double(asked) else { return nil }
        let drain = Double(latestBacklogBytes) * 8 / max(drainTime.millisecondsDouble / 1000, 0.1)
        return source + Int(drain)
    }

    /// `pacingShare`, less the share that empties the link's queue in `linkQueueDrainTime`; more
    /// (up to `emptyLinkExtraShare` more) while that queue is under `emptyLinkQueue`.
    var currentPacingShare: Double {
        let queue = (linkQueueDelay ?? .zero).millisecondsDouble
        let short = emptyLinkQueue.millisecondsDouble
        if linkQueueDelay != nil, queue < short {
            return pacingShare + emptyLinkExtraShare * (1 - queue / max(short, 1))
        }
        return max(minimumPacingShare, pacingShare - queue / max(linkQueueDrainTime.millisecondsDouble, 1))
    }

    /// The rate the encoder should follow for this viewer: the estimate; in an episode, less the
    /// backlog spread over `drainTime` and what came into the pacer beyond that plan
    /// (`inflowSurplusBitsPerSecond`).
    public func encoderBitsPerSecond(target: Int, backlogBytes: Int) -> Int {
        encoderBitsPerSecond(target: target, backlogBytes: backlogBytes, correctingInflow: true)
    }

    private func encoderBitsPerSecond(target: Int, backlogBytes: Int, correctingInflow: Bool) -> Int {
        guard isDraining else { return target }
        let drainBits = Double(backlogBytes) * 8 / max(drainTime.millisecondsDouble / 1000, 0.1)
        let surplus = correctingInflow ? inflowSurplusBitsPerSecond : 0
        return max(Int(Double(target) * minimumEncoderShare), target - Int(drainBits + surplus))
    }

    public func staleVideoLimit(normal: Duration, now: MonotonicTime) -> Duration {
        guard isDraining, let episodeStart, now - episodeStart < drainGrace else { return normal }
        return max(normal, staleVideoDuringDrain)
    }
}
