import ALSA
import RTCBase
import Testing

/// Feeds a timeline `count` chunks of `frames` frames whose true capture times follow a device
/// clock running `ppm` parts per million slow (positive) or fast (negative), each estimate late by
/// a seeded random scheduling delay (0…`maximumJitter` ms; one read in eight is on time).
func simulate(chunks count: Int, frames: Int = 480, ppm: Double = 0, maximumJitter: UInt64 = 8, seed: UInt64 = 1)
    -> (placed: [(position: UInt64, captureTime: MonotonicTime)], truth: [MonotonicTime])
{
    var timeline = CaptureTimeline(sampleRate: 48_000)
    var random = SeededRandom(seed: seed)
    let start = MonotonicTime(seconds: 1000)
    var placed: [(position: UInt64, captureTime: MonotonicTime)] = []
    var truth: [MonotonicTime] = []
    for index in 0..<count {
        let seconds = Double(index * frames) / 48_000 * (1 + ppm / 1_000_000)
        let trueTime = start + .nanoseconds(Int64(seconds * 1e9))
        let jitter = random.next() % 8 == 0 ? 0 : random.next() % (maximumJitter * 1_000_000 + 1)
        truth.append(trueTime)
        placed.append(timeline.place(frames: frames, estimate: trueTime + .nanoseconds(Int64(jitter)), afterDiscontinuity: false))
    }
    return (placed, truth)
}

@Suite("CaptureTimeline: capture times from jittery per-read estimates")
struct CaptureTimelineTests {
    @Test("scheduling jitter up to 8 ms: positions contiguous, times strictly increasing and within 1 ms of the truth")
    func jitterIsFilteredOut() {
        let run = simulate(chunks: 500)
        for (index, placed) in run.placed.enumerated() {
            #expect(placed.position == UInt64(index * 480))
            if index > 0 { #expect(placed.captureTime > run.placed[index - 1].captureTime) }
            if index >= 20 {
                let error = (placed.captureTime - run.truth[index]).millisecondsDouble
                #expect(error >= 0 && error < 1, "chunk \(index) is \(error) ms off")
            }
        }
    }

    @Test("a device clock 300 ppm slow or fast is followed within 7 ms over 20 s, by one-frame slews: no jumps")
    func clockDriftIsFollowed() {
        for ppm in [300.0, -300.0] {
            let run = simulate(chunks: 2000, ppm: ppm, seed: 7)
            var worst = 0.0
            var irregularSteps = 0
            for index in 20..<run.placed.count {
                worst = max(worst, abs((run.placed[index].captureTime - run.truth[index]).millisecondsDouble))
                #expect(run.placed[index].captureTime > run.placed[index - 1].captureTime)
                // After the first second (settling), 10 ms ± one frame (20.8 µs) from one chunk to the next.
                let step = (run.placed[index].captureTime - run.placed[index - 1].captureTime).nanosecondsClamped
                if index > 100, abs(step - 10_000_000) > 20_834 { irregularSteps += 1 }
            }
            // The slower device is followed up only once every estimate of the last 20 windows was
            // late (the lower envelope of a saw-toothing sound server stays flat): up to 20 s × 300 ppm.
            #expect(worst < 7, "\(ppm) ppm: worst error \(worst) ms")
            #expect(irregularSteps == 0, "\(ppm) ppm: \(irregularSteps) steps off the sample clock by more than a frame")
        }
        // A typical crystal (50 ppm fast): within 2 ms.
        let typical = simulate(chunks: 2000, ppm: -50, seed: 3)
        let worst = (100..<typical.placed.count).map { abs((typical.placed[$0].captureTime - typical.truth[$0]).millisecondsDouble) }.max() ?? 0
        #expect(worst < 2, "50 ppm: worst error \(worst) ms")
    }

    @Test("a sound server's saw-tooth delivery (2.2 ms later every second for 9 s, then 20 ms back) leaves capture times on the sample clock")
    func sawToothDeliveryStaysOnTheSampleClock() {
        var timeline = CaptureTimeline(sampleRate: 48_000)
        let start = MonotonicTime(seconds: 100)
        var random = SeededRandom(seed: 11)
        var placed: [MonotonicTime] = []
        for index in 0..<3000 {   // 60 s of 20 ms chunks
            let truth = start + .milliseconds(Int64(index * 20))
            let seconds = Double(index * 20 % 10_000) / 1000   // the tooth: 10 s long
            let lateness = Int64(seconds * 2_200_000) + Int64(random.next() % 3_000_000)
            placed.append(timeline.place(frames: 960, estimate: truth + .nanoseconds(lateness), afterDiscontinuity: false).captureTime)
        }
        var irregular = 0
        for index in 51..<placed.count {
            let step = (placed[index] - placed[index - 1]).nanosecondsClamped
            if abs(step - 20_000_000) > 20_834 { irregular += 1 }
        }
        #expect(irregular == 0)
        #expect(timeline.jumps == 0)
        // It stays at the teeth's lower edge (the earliest estimates), not their average.
        let error = (placed[placed.count - 1] - (start + .milliseconds(Int64((placed.count - 1) * 20)))).millisecondsDouble
        #expect(error >= 0 && error < 5, "\(error) ms after the truth at the end")
    }

    @Test("skipped frames keep their place on the sample clock")
    func skippedFramesKeepTheirPlace() {
        var timeline = CaptureTimeline(sampleRate: 48_000)
        let start = MonotonicTime(seconds: 5)
        for index in 0..<10 {
            _ = timeline.place(frames: 960, estimate: start + .milliseconds(Int64(index * 20)), afterDiscontinuity: false)
        }
        timeline.skip(frames: 960 * 25)   // half a second read and dropped
        #expect(timeline.endPosition == 960 * 35)
        // The next chunk is placed on the clock whatever the (late) read says.
        let next = timeline.place(frames: 960, estimate: nil, afterDiscontinuity: false)
        #expect(next.position == 960 * 35)
        #expect(next.captureTime == start + .milliseconds(700))
    }

    @Test("a late first estimate is corrected down without ever going backwards")
    func lateFirstEstimate() {
        var timeline = CaptureTimeline(sampleRate: 48_000)
        let start = MonotonicTime(seconds: 50)
        var previous = MonotonicTime.zero
        var last = MonotonicTime.zero
        for index in 0..<40 {
            let truth = start + .milliseconds(Int64(index * 10))
            let estimate = index == 0 ? truth + .milliseconds(60) : truth   // the first read returned 60 ms late
            last = timeline.place(frames: 480, estimate: estimate, afterDiscontinuity: false).captureTime
            #expect(last > previous)
            // Never more than half a chunk's duration per step down.
            if index > 0 { #expect((last - previous) >= .milliseconds(5)) }
            previous = last
        }
        #expect(last == start + .milliseconds(390), "converged to \(last)")
    }

    @Test("estimates late for a whole second by more than the jump limit move the timeline up by the smallest lateness at once")
    func persistentLatenessMovesUp() {
        var timeline = CaptureTimeline(sampleRate: 48_000)
        let start = MonotonicTime(seconds: 10)
        var times: [MonotonicTime] = []
        for index in 0..<250 {
            let truth = start + .milliseconds(Int64(index * 10))
            // From chunk 10 on the device reports 60 ms more latency (say, a sound server's buffer grew).
            let estimate = index < 10 ? truth : truth + .milliseconds(60 + Int64(index % 3))
            times.append(timeline.place(frames: 480, estimate: estimate, afterDiscontinuity: false).captureTime)
        }
        #expect(times[50] == start + .milliseconds(500))      // within the first window: unchanged
        #expect(times[249] == start + .milliseconds(2490 + 60))  // moved up by the smallest lateness
        #expect(timeline.jumps == 1)
        for index in 1..<times.count { #expect(times[index] > times[index - 1]) }
    }

    @Test("a smaller lasting lateness (10 ms) is slewed up one frame per chunk once the lower envelope shows it")
    func smallLatenessIsSlewed() {
        var timeline = CaptureTimeline(sampleRate: 48_000)
        let start = MonotonicTime(seconds: 10)
        var times: [MonotonicTime] = []
        let windows = CaptureTimeline.lowerEnvelopeWindows
        for index in 0..<(windows + 8) * 100 {
            let truth = start + .milliseconds(Int64(index * 10))
            let estimate = index < 100 ? truth : truth + .milliseconds(10)
            times.append(timeline.place(frames: 480, estimate: estimate, afterDiscontinuity: false).captureTime)
        }
        #expect(timeline.jumps == 0)
        for index in 1..<times.count {
            let step = (times[index] - times[index - 1]).nanosecondsClamped
            #expect(abs(step - 10_000_000) <= 20_834, "step \(index): \(step) ns")
        }
        let last = times.count - 1
        let error = (times[last] - (start + .milliseconds(Int64(last * 10) + 10))).millisecondsDouble
        #expect(abs(error) < 1.1, "\(error) ms from the new latency after \(windows + 8) s")
    }

    @Test("a discontinuity re-anchors on the estimate and the position skips the lost frames")
    func discontinuitySkipsPositions() {
        var timeline = CaptureTimeline(sampleRate: 48_000)
        let start = MonotonicTime(seconds: 3)
        for index in 0..<10 {
            _ = timeline.place(frames: 480, estimate: start + .milliseconds(Int64(index * 10)), afterDiscontinuity: false)
        }
        // The next contiguous frame (4800) would be at +100 ms; the stream resumes 500 ms later.
        let resumed = timeline.place(frames: 480, estimate: start + .milliseconds(600), afterDiscontinuity: true)
        #expect(resumed.position == 4800 + 24_000)
        #expect(resumed.captureTime == start + .milliseconds(600))
        let next = timeline.place(frames: 480, estimate: start + .milliseconds(612), afterDiscontinuity: false)
        #expect(next.position == 4800 + 24_000 + 480)
        #expect(next.captureTime == start + .milliseconds(610))
        // A discontinuity whose estimate is not later than expected loses no positions and keeps
        // times increasing.
        let early = timeline.place(frames: 480, estimate: start, afterDiscontinuity: true)
        #expect(early.position == 4800 + 24_000 + 960)
        #expect(early.captureTime > next.captureTime)
    }

    @Test("a 44.1 kHz timeline (22675.7 ns per frame): positions and times stay exact over 10 minutes")
    func longRunAt44100() {
        var timeline = CaptureTimeline(sampleRate: 44_100)
        let start = MonotonicTime(seconds: 7)
        var placed = (position: UInt64(0), captureTime: MonotonicTime.zero)
        let chunks = 600 * 100  // 10 minutes of 441-frame (10 ms) chunks
        for index in 0..<chunks {
            let truth = start + .milliseconds(Int64(index * 10))
            placed = timeline.place(frames: 441, estimate: truth, afterDiscontinuity: false)
        }
        #expect(placed.position == UInt64((chunks - 1) * 441))
        #expect(abs((placed.captureTime - (start + .milliseconds(Int64((chunks - 1) * 10)))).millisecondsDouble) < 0.01)
    }
}
