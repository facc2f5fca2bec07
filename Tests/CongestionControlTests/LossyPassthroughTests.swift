import RTCBase
import Testing

@testable import CongestionControl

/// The VM's lossy test (board/qemu-x86_64/test-daemon-in-vm.sh --lossy) on the virtual clock: a
/// source whose rate does not follow the estimate (600 kb/s, 25 fps, an IDR every 50 frames)
/// through netem, 25 ms each way and 10 % random loss on the way out, no rate limit and no queue.
/// Nothing here is congestion: the pacer must never hold the video back. Two senders of it:
/// - the daemon's passthrough path (an H.264 file, a command's stream, a camera's own H.264): the
///   daemon knows the source cannot follow and sets `videoSourceFollowsEstimate` (holdsVideo)
///   false, so no congestion episode ever holds its video;
/// - an encoder that ignores the bitrate it is asked for (a V4L2 M2M encoder that does not honour
///   V4L2_CID_MPEG_VIDEO_BITRATE): the daemon takes it to follow, and only CongestionResponse's
///   `sourceFloor`, measured from what the pacer is given, stops an episode from holding it.
struct LossyPassthroughTests {
    static let s = CallSimulation.second
    static let ms = CallSimulation.millisecond

    struct Outcome {
        var episodes: Int
        var largestBacklog: Int
        var longestVideoWait: Int64
        var freezes: [Double]
        var resendsRefused: Int
        var resendsSent: Int
        var minimumTarget: Int
        var minimumPacing: Int
        var roundTrip: Duration?
    }

    /// `sourceFollowsEstimate`: false is the daemon's passthrough path, true an encoder that ignores
    /// its bitrate (see above). `copies` of each first resend, as PeerSession sends them where the
    /// retransmission budget leaves room (three at 10 % loss).
    static func run(seed: UInt64, sourceFollowsEstimate: Bool, seconds: Int64 = 20, stalls: Bool = false,
                    copies: Int = 3) -> Outcome {
        // No bottleneck: 1 Gb/s, a queue nothing fills, 25 ms each way, 10 % lost before it.
        let link = BottleneckLink(rateSteps: [(0, 1_000_000_000)], queueLimit: 1000 * Self.ms, propagation: 25 * Self.ms,
                                  lossProbability: 0.10, seed: seed)
        var call = CallSimulation(configuration: BandwidthEstimatorConfiguration(
            startBitsPerSecond: 600_000, minimumBitsPerSecond: 100_000, maximumBitsPerSecond: 600_000), link: link)
        call.passthrough = (600_000, 25, 50, 8)
        call.videoSourceFollowsEstimate = sourceFollowsEstimate
        call.feedbackInterval = 50 * Self.ms
        call.congestionHandling = .respond
        call.nacks = true
        call.firstResendCopies = copies
        // The daemon's pacer: it never speeds up to empty its queue (PeerSession drops stale video).
        call.pacer = Pacer(configuration: PacerConfiguration(queueDelayLimit: .seconds(3600),
                                                             initialPacingBitsPerSecond: 1_500_000))
        if stalls {
            // A TCG guest and a loaded host: now and then nothing arrives for 40-200 ms, then all of it at once.
            var random = SeededRandom(seed: seed &+ 100)
            var at = call.now + 2 * Self.s
            while at < call.now + seconds * Self.s {
                let duration = Int64(40 + random.next() % 160) * Self.ms
                call.receiverStalls.append((at, duration))
                at += duration + Int64(500 + random.next() % 1500) * Self.ms
            }
        }
        var minimumPacing = Int.max, minimumTarget = Int.max
        var time = call.now
        let end = call.now + seconds * Self.s
        while time < end {
            time += 10 * Self.ms
            call.run(until: time)
            minimumPacing = min(minimumPacing, call.pacer.pacingBitsPerSecond)
            minimumTarget = min(minimumTarget, call.target)
        }
        return Outcome(episodes: call.estimator.diagnostics.congestionEpisodes, largestBacklog: call.largestMediaBacklog,
                       longestVideoWait: call.longestVideoWait, freezes: call.freezes(from: 2 * Self.s, to: end),
                       resendsRefused: call.resendsRefused, resendsSent: call.resendsSent, minimumTarget: minimumTarget,
                       minimumPacing: minimumPacing, roundTrip: call.estimator.roundTripTime)
    }

    static func describe(_ outcome: Outcome, _ what: String, seed: UInt64) -> String {
        "lossy \(what) seed \(seed): \(outcome.episodes) congestion episodes, pacer backlog max \(outcome.largestBacklog) B, "
            + "longest video wait \(outcome.longestVideoWait / Self.ms) ms, pacing min \(kbps(Double(outcome.minimumPacing))), "
            + "target min \(kbps(Double(outcome.minimumTarget))), freezes \(outcome.freezes.map { Int($0) }) ms, "
            + "resends \(outcome.resendsSent) sent / \(outcome.resendsRefused) refused, RTT \(outcome.roundTrip.map { "\($0)" } ?? "-")"
    }

    /// The daemon's passthrough path (holdsVideo false): whatever the estimator makes of the loss
    /// and the stalls, the pacer never holds the file's video back for it.
    ///
    /// The loss-based bound measured against the path's inherent loss (stop 34): with gcc-02's
    /// thresholds on the raw figure it ratcheted down at this 10 % loss (half the figures read over
    /// 10 % and cut, the others only held), seeds 1 and 2 took the target to 293 and 372 kb/s for
    /// the 600 kb/s file and its video waited 411 and 272 ms in the pacer (44.7 kB): test_loss_rtt's
    /// failure in two rehearsals (resends refused, stale video dropped). Now 418-597 kb/s over 30 s.
    @Test(arguments: [UInt64(1), 2, 3, 4, 5, 6, 7, 8])
    func passthroughVideoIsNeverHeldBack(seed: UInt64) {
        let outcome = Self.run(seed: seed, sourceFollowsEstimate: false, seconds: 30, stalls: true)
        print(Self.describe(outcome, "passthrough (holdsVideo false)", seed: seed))
        // No episode holds it (seed 2's estimator still sees one): what waits is an IDR's burst at
        // the pacer's 2.5 × the estimate, 232 ms at most. The same seed with the floor alone (the
        // test below): 543 ms, 41 kB in the pacer.
        #expect(outcome.longestVideoWait < 250 * Self.ms)
        #expect(outcome.largestBacklog < 30_000)
        #expect(outcome.resendsRefused == 0)
        #expect((outcome.freezes.max() ?? 0) < 400)
    }

    /// An encoder that ignores its bitrate (holdsVideo true): an episode the estimator starts (a
    /// stall read as a growing queue) would hold its video until it went stale, but for the floor
    /// CongestionResponse measures from what the source gives the pacer.
    @Test(arguments: [UInt64(1), 2, 3, 4])
    func anEncoderIgnoringItsBitrateIsNotHeldBackForLong(seed: UInt64) {
        let outcome = Self.run(seed: seed, sourceFollowsEstimate: true, stalls: true)
        print(Self.describe(outcome, "encoder ignoring its bitrate (sourceFloor)", seed: seed))
        // Random loss is not congestion; a stall the trendline reads as a growing queue may be one.
        // Before: 1, 3, 2 and 5 episodes (loss bursts while the detector read a stall as overuse).
        #expect(outcome.episodes <= 1)
        // The daemon drops video that waited 400 ms (1.5 s in an episode's first 3 s) and restarts
        // at a keyframe. Before the floor: 7,993 and 7,434 ms (seeds 1 and 2; 624 and 563 kB in the
        // pacer), the pacer at 283 and 246 kb/s for a 600 kb/s source. With it 553 ms at most
        // (seed 2's episode: the source is seen not to follow 0.7 s into it), else < 250.
        // With three copies of each first resend (as the daemon sends them) seed 2's episode holds
        // 53 kB and the longest freeze is 414 ms (51 kB, 411 ms with the raw-loss bound; 36 kB and
        // 372 ms with one copy).
        #expect(outcome.longestVideoWait < (outcome.episodes == 0 ? 250 : 600) * Self.ms)
        #expect(outcome.largestBacklog < (outcome.episodes == 0 ? 30_000 : 60_000))
        #expect(outcome.resendsRefused == 0)
        // Before: 620 and 962 ms.
        #expect((outcome.freezes.max() ?? 0) < (outcome.episodes == 0 ? 400 : 450))
    }
}
