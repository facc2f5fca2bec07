import RTCBase
import Testing

@testable import CongestionControl

/// The pieces issue 24's step and steady-link figures rest on, each on the virtual clock.
@Suite("Congestion response: the link's queue, the pacing under it, AIMD's second decrease")
struct CongestionResponseTests {
    static func at(_ milliseconds: Int64) -> MonotonicTime { MonotonicTime(nanoseconds: UInt64(milliseconds) * 1_000_000) }

    /// One packet sent at `sent` ms that arrived `oneWay` ms later on a remote clock 5 s ahead of ours.
    static func result(_ sequence: Int64, sent: Int64, oneWay: Int64?) -> PacketResult {
        PacketResult(sequenceNumber: sequence, sendTime: at(sent), bytes: 1200, kind: .media,
                     arrivalMicroseconds: oneWay.map { (5_000 + sent + $0) * 1000 })
    }

    @Test func queueingDelayIsTheOneWayDelayAboveItsLowest() {
        var tracker = QueueingDelayTracker()
        #expect(tracker.delay == nil)
        // 1 s at a 20 ms one-way delay, then a queue that grows to 180 ms.
        tracker.update(received: (0..<50).map { Self.result($0, sent: 1_000 + $0 * 20, oneWay: 20) })
        #expect(tracker.delay == .zero)
        tracker.update(received: (50..<60).map { Self.result($0, sent: 1_000 + $0 * 20, oneWay: 20 + ($0 - 49) * 18) })
        #expect(tracker.delay == .milliseconds(180))
        // It grew from packet 49's arrival (the last with no queue), 180 ms over 380 ms of arrivals.
        let rise = tracker.rise
        #expect(rise?.delay == .milliseconds(180))
        let since: Int64 = rise?.since ?? 0
        #expect(since == 7_000_000)  // 1,000 + 49 × 20 ms sent, 20 ms on the way, on a clock 5 s ahead
        #expect(abs((rise?.slope ?? 0) - 180.0 / 380) < 0.001)
        // Lost packets say nothing; an older packet reported late does not replace the newest.
        tracker.update(received: [Self.result(60, sent: 2_200, oneWay: nil), Self.result(45, sent: 1_900, oneWay: 20)])
        #expect(tracker.delay == .milliseconds(180))
        // The queue drained.
        tracker.update(received: [Self.result(61, sent: 2_220, oneWay: 25)])
        #expect(tracker.delay == .milliseconds(5))
        #expect(tracker.rise == nil)
        // 10 s later the old base has aged out: a path that is 30 ms longer for good reads as no queue.
        tracker.update(received: (62..<700).map { Self.result($0, sent: 2_240 + ($0 - 62) * 20, oneWay: 50) })
        #expect(tracker.delay == .zero)
    }

    @Test func theLinksQueueSlowsThePacerUntilItIsShort() {
        var response = CongestionResponse()
        response.update(congested: true, deliveredBitsPerSecond: 800_000, backlogBytes: 30_000,
                        linkQueueDelay: .milliseconds(100), now: Self.at(1_000))
        // 100 ms queued: 0.9 − 0.1/0.25 = 0.5 of what the link delivers, so its queue empties in ~0.25 s.
        #expect(response.pacingBitsPerSecond(target: 680_000, normal: 1_700_000) == 400_000)
        // Resends waiting go at 0.9 of it: slowing them only makes them later.
        #expect(response.pacingBitsPerSecond(target: 680_000, normal: 1_700_000, resendsWaiting: true) == 720_000)
        response.update(congested: true, deliveredBitsPerSecond: 800_000, backlogBytes: 30_000,
                        linkQueueDelay: .milliseconds(200), now: Self.at(1_050))
        #expect(response.pacingBitsPerSecond(target: 680_000, normal: 1_700_000) == 320_000)  // never under 0.4
        #expect(response.pacingBitsPerSecond(target: 680_000, normal: 1_700_000, resendsWaiting: true) == 720_000)
        response.update(congested: true, deliveredBitsPerSecond: 800_000, backlogBytes: 30_000,
                        linkQueueDelay: .milliseconds(30), now: Self.at(1_100))
        // Short: at 0.9 − 0.12 of the link's rate.
        #expect(abs(response.pacingBitsPerSecond(target: 680_000, normal: 1_700_000) - 624_000) < 1_000)
        // Under 20 ms the link passes more than it delivered at the episode's start: up to 1.2 of it
        // with no queue at all (2 ms: 0.9 + 0.3 × 0.9), resends too.
        response.update(congested: true, deliveredBitsPerSecond: 800_000, backlogBytes: 30_000,
                        linkQueueDelay: .milliseconds(2), now: Self.at(1_150))
        #expect(abs(response.pacingBitsPerSecond(target: 680_000, normal: 1_700_000) - 936_000) < 1_000)
        #expect(abs(response.pacingBitsPerSecond(target: 680_000, normal: 1_700_000, resendsWaiting: true) - 936_000) < 1_000)
        // Outside an episode the queue does not matter.
        response.update(congested: false, deliveredBitsPerSecond: nil, backlogBytes: 0,
                        linkQueueDelay: .milliseconds(200), now: Self.at(1_200))
        #expect(response.pacingBitsPerSecond(target: 680_000, normal: 1_700_000) == 1_700_000)
        #expect(response.pacingBitsPerSecond(target: 680_000, normal: 1_700_000, resendsWaiting: true) == 1_700_000)
    }

    /// A passthrough source (`holdsVideo` false): no episode, whatever the estimator says.
    @Test func aPassthroughSourceIsNeverHeld() {
        var response = CongestionResponse()
        response.holdsVideo = false
        response.update(congested: true, deliveredBitsPerSecond: 400_000, backlogBytes: 60_000,
                        linkQueueDelay: .milliseconds(300), videoBytesEnqueued: 10_000, now: Self.at(1_000))
        #expect(!response.isDraining)
        #expect(response.pacingBitsPerSecond(target: 300_000, normal: 750_000) == 750_000)
        #expect(response.encoderBitsPerSecond(target: 300_000, backlogBytes: 60_000) == 300_000)
        #expect(response.staleVideoLimit(normal: .milliseconds(400), now: Self.at(1_100)) == .milliseconds(400))
        response.holdsVideo = true
        response.update(congested: true, deliveredBitsPerSecond: 400_000, backlogBytes: 60_000,
                        linkQueueDelay: .milliseconds(300), videoBytesEnqueued: 20_000, now: Self.at(1_200))
        #expect(response.isDraining)
    }

    /// The periodic IDR waits while a viewer's link is congested, at most `longestHold`; the first
    /// picture and every IDR (forced ones too) restart the count.
    @Test func thePeriodicKeyframeWaitsForTheCongestionToEnd() {
        var schedule = KeyframeSchedule(interval: 90, longestHold: .seconds(4))
        // 30 fps on the virtual clock from 1 s.
        func frame(_ index: Int) -> MonotonicTime { Self.at(1_000 + Int64(index) * 100 / 3) }
        var keyframes: [Int] = []
        var congested: ClosedRange<Int>? = nil
        func run(_ frames: Range<Int>) {
            for index in frames {
                let due = schedule.keyframeDue(congested: congested?.contains(index) ?? false, now: frame(index))
                if due { keyframes.append(index) }
                schedule.pictureMade(isKeyframe: due)
            }
        }
        run(0 ..< 200)
        #expect(keyframes == [0, 90, 180])
        // Congested from frame 260 to 299: the IDR due at 270 waits until 300.
        congested = 260 ... 299
        run(200 ..< 400)
        #expect(keyframes == [0, 90, 180, 270 + 30, 390])
        #expect(schedule.holds == 1)
        // A forced IDR (PLI) at 420 restarts the count: the next is due at 510.
        congested = nil
        for index in 400 ..< 560 {
            let forced = index == 420
            let due = schedule.keyframeDue(congested: false, now: frame(index))
            if due || forced { keyframes.append(index) }
            schedule.pictureMade(isKeyframe: due || forced)
        }
        #expect(keyframes.suffix(2) == [420, 510])
        // A link that stays congested still gets one 4 s (120 frames) after it was due.
        congested = 560 ... 2000
        run(560 ..< 800)
        #expect(keyframes.suffix(2) == [510, 600 + 120])
        // A new encoder: its first picture is an IDR.
        schedule.restart(interval: 90)
        let first = schedule.keyframeDue(congested: true, now: frame(800))
        #expect(first)
    }

    /// A source that does not follow the cut (a passthrough file at 600 kb/s) is paced at least at
    /// its own rate plus the backlog over `drainTime` from 0.5 s into an episode; an encoder that
    /// followed is held at the link's rate as before.
    @Test func aSourceThatCannotFollowIsNotHeldBack() {
        func run(sourceBitsPerSecond: (Int64) -> Int) -> [Int] {
            var response = CongestionResponse()
            var enqueued = 0
            var paces: [Int] = []
            for step in Int64(0)...40 {  // 40 ms apart (25 fps), the episode from 0 ms
                let now = Self.at(1_000 + step * 40)
                enqueued += sourceBitsPerSecond(step * 40) / 8 / 25
                // The link's queue unknown: the pacing share is 0.9 (see theLinksQueueSlowsThePacerUntilItIsShort).
                response.update(congested: true, deliveredBitsPerSecond: 400_000, backlogBytes: 20_000,
                                linkQueueDelay: nil, videoBytesEnqueued: enqueued, now: now)
                paces.append(response.pacingBitsPerSecond(target: 300_000, normal: 750_000))
            }
            return paces
        }
        let passthrough = run { _ in 600_000 }
        #expect(passthrough[0] == 360_000)  // 0.9 × 400 kb/s: held at first, as for any source
        #expect(passthrough[12] == 360_000)  // 480 ms: the source may still follow
        // From 0.7 s (0.5 s to follow, 0.2 s to measure): 600 kb/s + 20 kB over 1 s.
        #expect(passthrough[18...].allSatisfy { abs($0 - 760_000) < 10_000 }, "\(passthrough)")
        // An encoder that went down to what it was asked (0.3 × 0.5 … 0.3 Mb/s) within 0.2 s.
        let encoder = run { $0 < 200 ? 1_000_000 : 200_000 }
        #expect(encoder.allSatisfy { $0 == 360_000 }, "\(encoder)")
    }

    /// A second overuse while the queue the first decrease left drains: the rate is already under
    /// β × what arrives, so it goes no lower than β × the link's capacity (its average at overuse).
    /// Before, β × its lower bound: 1.8 Mb/s → 1.62 → 1.55 on a 1.9 Mb/s link.
    @Test func aDrainingQueueDoesNotCutTwice() {
        var control = AIMDRateControl(start: 1_800_000, minimum: 100_000, maximum: 2_500_000)
        control.roundTripTime = .milliseconds(2)
        control.update(usage: .normal, acknowledged: 1_900_000, at: Self.at(1_000))
        control.update(usage: .overusing, acknowledged: 1_900_000, at: Self.at(1_050))
        let first = control.bitsPerSecond
        #expect(abs(first - 0.85 * 1_900_000) < 1)
        for step in 1...4 {
            control.update(usage: .overusing, acknowledged: 1_950_000, at: Self.at(1_050 + Int64(step) * 50))
        }
        #expect(control.bitsPerSecond >= first - 1, "cut again to \(Int(control.bitsPerSecond))")
        // A link that really got slower (less arrives) is still followed down.
        control.update(usage: .overusing, acknowledged: 1_000_000, at: Self.at(1_400))
        #expect(abs(control.bitsPerSecond - 850_000) < 1)
    }

    /// An episode whose source puts more into the pacer than it was asked for (x264 20 % over, and
    /// 150 kb/s of resend copies), frames every 33 ms, the pacer at 0.9 × 1.6 Mb/s with the link's
    /// queue at 30 ms: without the inflow correction the backlog settles where the drain term
    /// balances the surplus (a standing queue of ~40 KB, the episode never ends); with it, the
    /// backlog drains and the episode ends.
    @Test func aSurplusIntoThePacerIsTakenOffTheEncoder() {
        func run(gain: Double) -> (backlogs: [Int], endedAt: Int64?, lowestAsk: Int) {
            var response = CongestionResponse()
            response.correctionGain = gain
            var backlog = 0.0
            var backlogs: [Int] = []
            var lowestAsk = Int.max
            let target = 1_500_000
            for step in Int64(0) ..< 300 {  // 10 s of frames
                let now = Self.at(1_000 + step * 100 / 3)
                response.update(congested: step < 30, deliveredBitsPerSecond: 1_600_000, backlogBytes: Int(backlog),
                                linkQueueDelay: .milliseconds(30), now: now)
                if !response.isDraining, step >= 30 { return (backlogs, step * 100 / 3, lowestAsk) }
                let ask = response.encoderBitsPerSecond(target: target, backlogBytes: Int(backlog))
                lowestAsk = min(lowestAsk, ask)
                let pace = Double(response.pacingBitsPerSecond(target: target, normal: 3_750_000))
                // This frame and the resends come in; the pacer sends over the frame interval.
                backlog += (Double(ask) * 1.2 + 150_000) / 8 / 30
                backlogs.append(Int(backlog))
                backlog = max(0, backlog - pace / 8 / 30)
            }
            return (backlogs, nil, lowestAsk)
        }
        let uncorrected = run(gain: 0)
        #expect(uncorrected.endedAt == nil)
        #expect(uncorrected.backlogs.suffix(30).allSatisfy { $0 > 30_000 }, "\(uncorrected.backlogs.suffix(30))")
        let corrected = run(gain: 0.5)
        #expect(corrected.endedAt != nil && corrected.endedAt! < 5_000, "\(corrected.backlogs)")
        // Never under the encoder's floor (half the estimate).
        #expect(corrected.lowestAsk >= 750_000)
    }

    /// The inflow correction lowers what the encoder is asked for; an encoder still coming down to
    /// the cut (1.2 Mb/s against a plan of 1.18 Mb/s) must not look like a source that never follows
    /// (`sourceFloor`: more than 1.5 × the ask) once the corrected ask is down at the floor (0.75 Mb/s).
    @Test func anEncoderLateToFollowIsNotTakenForOneThatNeverDoes() {
        var response = CongestionResponse()
        var enqueued = 0
        for step in Int64(0)...75 {  // 40 ms apart, 3 s; the backlog stands at 40 KB
            enqueued += 1_200_000 / 8 / 25
            response.update(congested: true, deliveredBitsPerSecond: 1_600_000, backlogBytes: 40_000,
                            linkQueueDelay: .milliseconds(30), videoBytesEnqueued: enqueued, now: Self.at(1_000 + step * 40))
        }
        #expect(response.inflowSurplusBitsPerSecond > 400_000)
        #expect(response.encoderBitsPerSecond(target: 1_500_000, backlogBytes: 40_000) == 750_000)
        // Paced as any encoder's episode: 1.5 Mb/s × (0.9 − 30/250) / 0.9, not at the source's own rate.
        #expect(abs(response.pacingBitsPerSecond(target: 1_500_000, normal: 3_750_000) - 1_300_000) < 10)
    }
}

