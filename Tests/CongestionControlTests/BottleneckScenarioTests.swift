import RTCBase
import RTP
import Testing

@testable import CongestionControl

/// Issue 24's link scenarios against the whole loop on the virtual clock (NetworkSimulation.swift).
@Suite("Send-side bandwidth estimation on a simulated bottleneck (issue 24)")
struct BottleneckScenarioTests {
    static let s = CallSimulation.second
    static let ms = CallSimulation.millisecond
    static let configuration = BandwidthEstimatorConfiguration(startBitsPerSecond: 1_000_000, minimumBitsPerSecond: 100_000,
                                                               maximumBitsPerSecond: 2_500_000)

    @Test func stepDownFiveMegabitsToEightHundredKilobits() {
        let stepAt = 1 * Self.s + 15 * Self.s
        let link = BottleneckLink(rateSteps: [(0, 5_000_000), (stepAt, 800_000)], queueLimit: 500 * Self.ms,
                                  propagation: 20 * Self.ms)
        var call = CallSimulation(configuration: Self.configuration, link: link)
        call.run(until: stepAt + 15 * Self.s)
        let before = call.target(at: stepAt)
        let reached = call.firstTime(from: stepAt) { $0 <= 700_000 }
        let queueLate = call.mediaQueueDelays(from: stepAt + 5 * Self.s, to: stepAt + 15 * Self.s)
        let queueEarly = call.mediaQueueDelays(from: stepAt, to: stepAt + 5 * Self.s)
        // The first media packet sent after the step whose queueing delay is under 150 ms for good.
        let recovered = call.mediaDelays.filter { $0.sent >= stepAt }
            .last { Double($0.delay - link.propagation) / 1e6 >= 150 }.map { $0.sent - stepAt } ?? 0
        let after = call.meanTarget(from: stepAt + 5 * Self.s, to: stepAt + 15 * Self.s)
        print("step 5M->800k: target \(kbps(Double(before))) before, ≤ 700 kb/s after \(reached.map { seconds($0 - stepAt) } ?? "never"), "
              + "queue delay max \(Int(queueEarly.max() ?? 0)) ms in the first 5 s, under 150 ms for good \(seconds(recovered)) after the step, "
              + "max \(Int(queueLate.max() ?? 0)) ms / p95 \(Int(percentile(queueLate, 95))) ms from 5 s on; "
              + "mean target \(kbps(after)) from 5 s on; link drops \(call.link.dropped)")
        #expect(before >= 2_000_000)
        #expect(reached != nil && reached! - stepAt <= 3 * Self.s)
        #expect(recovered <= 5 * Self.s)
        #expect((queueLate.max() ?? 0) < 150)
        #expect(after >= 450_000 && after <= 800_000)
    }

    /// Issue 24's interop step on the virtual clock: a 2.5 Mb/s stream, the link from 5 Mb/s to
    /// 800 kb/s with a 200 ms drop-tail queue (the interop test's tbf), the receiver NACKing gaps
    /// as Chromium does and counting freezes by its rule. Before (resends past the pacer, pacing at
    /// 2.5 × the estimate throughout) against `CongestionResponse` with resends in the pacer.
    @Test func stepIntoADeepQueueFreezesBriefly() {
        let stepAt = 11 * Self.s
        func run(_ handling: CallSimulation.CongestionHandling) -> CallSimulation {
            let link = BottleneckLink(rateSteps: [(0, 5_000_000), (stepAt, 800_000)], queueLimit: 200 * Self.ms,
                                      propagation: 2 * Self.ms)
            var call = CallSimulation(configuration: BandwidthEstimatorConfiguration(
                startBitsPerSecond: 2_500_000, minimumBitsPerSecond: 100_000, maximumBitsPerSecond: 2_500_000), link: link)
            call.feedbackInterval = 50 * Self.ms
            call.congestionHandling = handling
            call.nacks = true
            // The daemon's pacer: it never speeds up to empty its queue (PeerSession drops stale video).
            call.pacer = Pacer(configuration: PacerConfiguration(queueDelayLimit: .seconds(3600),
                                                                 initialPacingBitsPerSecond: 6_250_000))
            call.run(until: stepAt + 8 * Self.s)
            return call
        }
        var figures: [String: Double] = [:]
        for (name, handling) in [("before", CallSimulation.CongestionHandling.none), ("now", .respond)] {
            let call = run(handling)
            let freezes = call.freezes(from: stepAt, to: stepAt + 8 * Self.s)
            let total = freezes.reduce(0, +)
            let reached = call.firstTime(from: stepAt) { $0 <= 700_000 }
            print("5 Mb/s -> 800 kb/s into a 200 ms queue, \(name): \(freezes.count) freezes, \(Int(total)) ms in all "
                  + "(\(freezes.map { String(Int($0)) }.joined(separator: ", ")) ms); "
                  + "\(Int(call.framesShownPerSecond(from: stepAt, to: stepAt + 8 * Self.s))) fps shown over 8 s; "
                  + "target <= 700 kb/s after \(reached.map { seconds($0 - stepAt) } ?? "never"); link drops \(call.link.dropped), "
                  + "resends \(call.resendsSent) (\(call.resendsRefused) refused); video waited in the pacer at most "
                  + "\(call.longestVideoWait / Self.ms) ms")
            figures[name] = total
            print("  congestion episodes: \(call.estimator.diagnostics.congestionEpisodes)")
            if handling == .respond {
                #expect(total < 500, "froze \(Int(total)) ms after the step")
                #expect(reached != nil && reached! - stepAt <= 3 * Self.s)
                #expect(call.longestVideoWait < 1500 * Self.ms, "video waited \(call.longestVideoWait / Self.ms) ms: the daemon drops it then")
                #expect(call.framesShownPerSecond(from: stepAt, to: stepAt + 8 * Self.s) >= 25)
            }
        }
        #expect(figures["before"]! > figures["now"]!)
    }

    /// A receiver that stalls now and then (packets timestamped late, then all at once) on a 5 Mb/s
    /// link is no congestion: the target stays near the 2.5 Mb/s maximum.
    @Test func receiverStallsAreNotCongestion() {
        let link = BottleneckLink(rateSteps: [(0, 5_000_000)], queueLimit: 200 * Self.ms, propagation: 2 * Self.ms)
        var call = CallSimulation(configuration: BandwidthEstimatorConfiguration(
            startBitsPerSecond: 2_500_000, minimumBitsPerSecond: 100_000, maximumBitsPerSecond: 2_500_000), link: link)
        call.feedbackInterval = 50 * Self.ms
        call.congestionHandling = .respond
        var stalls: [(at: Int64, duration: Int64)] = []
        for index in 0..<10 {
            let at: Int64 = 6 * Self.s + Int64(index) * (2 * Self.s + 37 * Self.ms)
            let duration: Int64 = (60 + Int64(index % 4) * 40) * Self.ms
            stalls.append((at, duration))
        }
        call.receiverStalls = stalls
        call.run(until: 27 * Self.s)
        let lowest = call.samples.filter { $0.time >= 6 * Self.s }.map(\.target).min() ?? 0
        let mean = call.meanTarget(from: 6 * Self.s, to: 27 * Self.s)
        let episodes = call.estimator.diagnostics.congestionEpisodes
        print("receiver stalls of 60-180 ms every 2 s on a 5 Mb/s link: target at least \(kbps(Double(lowest))), "
              + "mean \(kbps(mean)); \(episodes) congestion episodes")
        #expect(lowest >= 1_250_000)
        #expect(mean >= 2_000_000)
        #expect(episodes == 0)
    }

    @Test func stepUpEightHundredKilobitsToFiveMegabits() {
        let stepAt = 1 * Self.s + 20 * Self.s
        let link = BottleneckLink(rateSteps: [(0, 800_000), (stepAt, 5_000_000)], queueLimit: 500 * Self.ms,
                                  propagation: 20 * Self.ms)
        var call = CallSimulation(configuration: Self.configuration, link: link)
        call.run(until: stepAt + 12 * Self.s)
        let before = call.meanTarget(from: stepAt - 10 * Self.s, to: stepAt)
        let reached = call.firstTime(from: stepAt) { $0 >= 2_375_000 }
        let queue = call.mediaQueueDelays(from: 6 * Self.s, to: stepAt)
        print("step 800k->5M: mean target \(kbps(before)) in the 10 s before (queue p95 \(Int(percentile(queue, 95))) ms), "
              + "back to ≥ 95 % of the 2.5 Mb/s maximum \(reached.map { seconds($0 - stepAt) } ?? "never") after the step, "
              + "\(call.probesSent) probe clusters in all")
        #expect(before >= 500_000 && before <= 850_000)
        #expect(reached != nil && reached! - stepAt <= 10 * Self.s)
    }

    @Test func fivePercentRandomLossAtFiftyMillisecondsRTT() {
        let rate = 2_000_000.0
        let link = BottleneckLink(rateSteps: [(0, rate)], queueLimit: 300 * Self.ms, propagation: 25 * Self.ms,
                                  lossProbability: 0.05, seed: 5)
        var call = CallSimulation(configuration: Self.configuration, link: link)
        call.run(until: 31 * Self.s)
        let mean = call.meanTarget(from: 11 * Self.s, to: 31 * Self.s)
        let delivered = call.deliveredBitsPerSecond(from: 11 * Self.s, to: 31 * Self.s)
        let loss = call.estimator.diagnostics.lossFraction ?? -1
        print("5 % loss, 50 ms RTT, 2 Mb/s link: mean target \(kbps(mean)) (\(Int(mean / rate * 100)) % of the link) over 10–30 s, "
              + "media delivered \(kbps(delivered)), measured loss \(Int(loss * 1000) / 10) %, random losses \(call.link.randomlyLost)")
        let episodes = call.estimator.diagnostics.congestionEpisodes
        print("5 % loss: \(episodes) congestion episodes in 30 s")
        #expect(mean >= 0.7 * rate)
        #expect(loss > 0.03 && loss < 0.08)
        // Random loss is not congestion (a burst of it with the delay up is).
        #expect(episodes <= 2)
    }

    @Test func bufferbloatQueueKeptShort() {
        let rate = 1_500_000.0
        let link = BottleneckLink(rateSteps: [(0, rate)], queueLimit: 200 * Self.ms, propagation: 15 * Self.ms)
        var call = CallSimulation(configuration: Self.configuration, link: link)
        call.run(until: 41 * Self.s)
        let queue = call.mediaQueueDelays(from: 11 * Self.s, to: 41 * Self.s)
        let mean = call.meanTarget(from: 11 * Self.s, to: 41 * Self.s)
        print("200 ms bufferbloat, 1.5 Mb/s link: media queueing delay after 10 s p50 \(Int(percentile(queue, 50))) ms, "
              + "p95 \(Int(percentile(queue, 95))) ms, max \(Int(queue.max() ?? 0)) ms; mean target \(kbps(mean)); drops \(call.link.dropped)")
        #expect(percentile(queue, 95) < 100)
        #expect(mean >= 0.6 * rate)
    }

    @Test func crossTrafficShareFollowed() {
        let rate = 3_000_000.0
        let link = BottleneckLink(rateSteps: [(0, rate)], queueLimit: 300 * Self.ms, propagation: 20 * Self.ms)
        var call = CallSimulation(configuration: Self.configuration, link: link)
        // 1.8 Mb/s of traffic that does not back off, from 10 s to 25 s: 1.2 Mb/s left for us.
        let crossStart = 11 * Self.s, crossEnd = 26 * Self.s
        call.crossTraffic = { time in time >= crossStart && time < crossEnd ? 1_800_000 : 0 }
        call.run(until: crossEnd + 10 * Self.s)
        let during = call.meanTarget(from: crossStart + 6 * Self.s, to: crossEnd)
        let settled = call.mediaDelays.filter { $0.sent >= crossStart && $0.sent < crossEnd }
            .last { Double($0.delay - link.propagation) / 1e6 >= 150 }.map { $0.sent - crossStart } ?? 0
        let queue = call.mediaQueueDelays(from: crossEnd - 3 * Self.s, to: crossEnd)
        let after = call.target(at: crossEnd + 10 * Self.s)
        print("cross traffic 1.8 of 3 Mb/s for 15 s: mean target \(kbps(during)) from 6 s after it started; the 300 ms queue it "
              + "filled under 150 ms for good after \(seconds(settled)), p95 \(Int(percentile(queue, 95))) ms in its last 3 s; "
              + "\(kbps(Double(after))) 10 s after it stopped")
        #expect(during <= 1_250_000 && during >= 700_000)
        #expect(settled <= 12 * Self.s)
        #expect(percentile(queue, 95) < 100)
        #expect(after >= 2_000_000)
    }

    /// Issue 24's steady link as the interop test shapes it: 2 Mb/s through a tbf-like drop-tail
    /// queue of 100 ms, random loss after it (nft in the viewer's namespace: the lost packets used
    /// the link), the daemon's loop (congestion response, NACKed resends in the pacer). Over 20 s
    /// after a 10 s start: the share of the link used (everything it carried) and the queueing
    /// delay, with and without 5 % loss and a 50 ms round trip.
    /// The steady link as the interop test shapes it: 2 Mb/s through a 100 ms drop-tail queue, random
    /// loss after it, the daemon's loop (congestion response, NACKed resends in the pacer).
    static func steadyLinkCall(loss: Double, oneWayMilliseconds: Int64, seed: UInt64) -> CallSimulation {
        var link = BottleneckLink(rateSteps: [(0, 2_000_000)], queueLimit: 100 * ms, propagation: oneWayMilliseconds * ms,
                                  lossProbability: loss, seed: seed)
        link.lossAfterQueue = true
        var call = CallSimulation(configuration: BandwidthEstimatorConfiguration(
            startBitsPerSecond: 1_000_000, minimumBitsPerSecond: 100_000, maximumBitsPerSecond: 2_500_000), link: link)
        call.feedbackInterval = 50 * ms
        call.congestionHandling = .respond
        call.nacks = true
        call.pacer = Pacer(configuration: PacerConfiguration(queueDelayLimit: .seconds(3600),
                                                             initialPacingBitsPerSecond: 2_500_000))
        return call
    }

    @Test(arguments: [(0.05, 25), (0.05, 1), (0.0, 25), (0.0, 1), (0.10, 25)])
    func steadyLinkIsUsed(loss: Double, oneWayMilliseconds: Int64) {
        var call = Self.steadyLinkCall(loss: loss, oneWayMilliseconds: oneWayMilliseconds, seed: 24)
        let from = 11 * Self.s, to = 31 * Self.s
        call.run(until: to)
        let used = call.link.utilization(from: from, to: to)
        let queue = call.mediaQueueDelays(from: from, to: to)
        let targets = call.samples.filter { $0.time >= from && $0.time < to }.map { Double($0.target) }
        let diagnostics = call.estimator.diagnostics
        print("steady 2 Mb/s, \(Int(loss * 100)) % loss, \(2 * oneWayMilliseconds) ms RTT: \(Int((used * 100).rounded())) % of the link used "
              + "over 20 s; target mean \(kbps(call.meanTarget(from: from, to: to))), min \(kbps(targets.min() ?? 0)), "
              + "max \(kbps(targets.max() ?? 0)); queueing delay p50 \(Int(percentile(queue, 50))) ms, p95 \(Int(percentile(queue, 95))) ms; "
              + "tbf drops \(call.link.dropped), \(diagnostics.congestionEpisodes) congestion episodes, "
              + "\(call.probesSent) probe clusters, threshold \(Int(diagnostics.threshold)) ms; \(call.framesWhileDraining) frames made while draining, "
              + "held \(kbps(call.encoderHeldUnder / Double(max(call.framesWhileDraining, 1)))) under the estimate then")
        #expect(used >= 0.75, "\(Int(used * 100)) % of the link used")
        #expect(percentile(queue, 95) < 100)
    }
}

extension BottleneckScenarioTests {
    /// How the sender meets the step, for `stepFreezesAtEveryPhaseOfTheKeyframeCycle`.
    enum StepHandling: CaseIterable {
        /// stepfreeze2 as it was: the periodic IDR whenever due, the pacer under the link's rate by
        /// the newest reported packet's queue over 500 ms, resends slowed with the rest.
        case stepfreeze2
        /// Only the periodic IDR held while the link drains (KeyframeSchedule).
        case keyframeHeld
        /// Only the pacing: the link's queue projected to now, over 250 ms; resends at the link's rate.
        case pacing
        /// Both: what the daemon does.
        case now
    }

    /// The freezes (ms) after the step of `stepIntoADeepQueueFreezesBriefly` made `phase` × 250 ms
    /// into the 3 s keyframe cycle.
    static func stepFreezes(phase: Int, handling: StepHandling) -> [Int] {
        let stepAt = 11 * s + Int64(phase) * 250 * ms
        let link = BottleneckLink(rateSteps: [(0, 5_000_000), (stepAt, 800_000)], queueLimit: 200 * ms, propagation: 2 * ms)
        var call = CallSimulation(configuration: BandwidthEstimatorConfiguration(
            startBitsPerSecond: 2_500_000, minimumBitsPerSecond: 100_000, maximumBitsPerSecond: 2_500_000), link: link)
        call.feedbackInterval = 50 * ms
        call.congestionHandling = .respond
        call.nacks = true
        call.holdsKeyframesWhileCongested = handling == .keyframeHeld || handling == .now
        if handling == .stepfreeze2 || handling == .keyframeHeld {
            call.projectsLinkQueue = false
            call.resendsAtLinkRate = false
            call.congestion.linkQueueDrainTime = .milliseconds(500)
        }
        call.pacer = Pacer(configuration: PacerConfiguration(queueDelayLimit: .seconds(3600), initialPacingBitsPerSecond: 6_250_000))
        call.run(until: stepAt + 8 * s)
        return call.freezes(from: stepAt, to: stepAt + 8 * s).map { Int($0) }
    }

    /// The step at twelve moments of the 3 s keyframe cycle (the interop test's step falls anywhere
    /// in x264's): every phase's freezes under 500 ms in all (issue 24). stepfreeze2 froze 285-302 ms
    /// but 500 ms with an IDR made 250 ms after the step (phase 7: 289 + 211, the IDR waiting behind
    /// the drain) and 523 ms with one made at the step (phase 8: its tail dropped at the full queue,
    /// the resends behind 180 ms of queue the pacer kept filling, slowed too). Measured (ms, phases
    /// 0-11): stepfreeze2 [291, 289, 291, 289, 291, 289, 291, 500, 523, 302, 285, 289]; the IDR held
    /// alone: phase 7 289, phase 8 523; the pacing alone: phase 7 458, phase 8 465; both
    /// [250, 244, 250, 244, 250, 244, 250, 244, 465, 253, 251, 244].
    @Test(arguments: 0..<12)
    func stepFreezesAtEveryPhaseOfTheKeyframeCycle(phase: Int) {
        let before = Self.stepFreezes(phase: phase, handling: .stepfreeze2), now = Self.stepFreezes(phase: phase, handling: .now)
        print("step at phase \(phase) (\(phase * 250) ms into the keyframe cycle): freezes stepfreeze2 \(before) = \(before.reduce(0, +)) ms, "
              + "now \(now) = \(now.reduce(0, +)) ms")
        #expect(now.reduce(0, +) < 500, "phase \(phase): \(now)")
        #expect(now.reduce(0, +) <= before.reduce(0, +) + 10, "phase \(phase): \(now) against \(before)")
    }
}

extension BottleneckScenarioTests {
    /// `steadyLinkIsUsed`'s 5 % loss with a sender as the daemon's is: x264 15 % over the rate it is
    /// asked for, three copies of each first resend; eight seeds of the random loss. Without the
    /// inflow correction (`CongestionResponse.correctionGain` 0) an episode may never end: the pacer
    /// keeps a standing backlog that the drain term alone balances against the surplus (the interop
    /// test showed 35-51 KB, video 194-328 ms old, for the rest of the run). Measured (video's wait
    /// in the pacer, p95 ms, seeds 1-8): gain 0 [411, 394, 122, 343, 324, 206, 128, 129] (867-877 of
    /// 900 frames made while draining in four), 0.5 [190, 182, 59, 136, 73, 66, 200, 121] (288-754).
    @Test func steadyLinkWithAnInexactSenderKeepsNoStandingQueue() {
        func run(seed: UInt64, correctionGain: Double) -> (waitP95: Double, framesDraining: Int, used: Double) {
            var call = Self.steadyLinkCall(loss: 0.05, oneWayMilliseconds: 1, seed: seed)
            call.encoderOvershoot = 1.15
            call.firstResendCopies = 3
            call.congestion.correctionGain = correctionGain
            let from = 11 * Self.s, to = 31 * Self.s
            call.run(until: to)
            let waits = call.videoWaits.filter { $0.sent >= from && $0.sent < to }.map { Double($0.wait) / 1e6 }
            return (percentile(waits, 95), call.framesWhileDraining, call.link.utilization(from: from, to: to))
        }
        var worst: [Double: Double] = [:]
        for gain in [0.5, 0.0] {
            let runs = (UInt64(1)...8).map { run(seed: $0, correctionGain: gain) }
            worst[gain] = runs.map(\.waitP95).max() ?? 0
            print("steady 2 Mb/s, 5 % loss, x264 15 % over, 3 copies a first resend, correction gain \(gain), seeds 1-8: "
                  + "video waited in the pacer p95 \(runs.map { Int($0.waitP95) }) ms; frames made while draining (of 900) "
                  + "\(runs.map(\.framesDraining)); link used \(runs.map { Int(($0.used * 100).rounded()) }) %")
            if gain > 0 {
                #expect(runs.allSatisfy { $0.waitP95 < 250 && $0.used >= 0.9 })
            }
        }
        // The standing queue this is about (so the test above can fail).
        #expect(worst[0.0]! > 300)
    }
}
