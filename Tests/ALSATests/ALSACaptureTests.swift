import ALSA
import Glibc
import RTCBase
import Testing

/// A chunk and the CLOCK_MONOTONIC time `readPeriod()` returned it.
struct TimedChunk {
    var chunk: ALSAAudioChunk
    var readAt: MonotonicTime
}

/// Reads `periods` periods the way the daemon's audio thread does: blocking, one after the other.
func readPeriods(_ capture: ALSACapture, count periods: Int) throws -> [TimedChunk] {
    var result: [TimedChunk] = []
    result.reserveCapacity(periods)
    for _ in 0..<periods {
        let chunk = try capture.readPeriod()
        result.append(TimedChunk(chunk: chunk, readAt: monotonicNow()))
    }
    return result
}

/// The 1 kHz phase (radians) and amplitude of `samples` whose first sample has absolute index `start`.
func phaseOf1kHz(_ samples: ArraySlice<Int16>, start: Int, sampleRate: Double = 48_000) -> (phase: Double, amplitude: Double) {
    var i = 0.0, q = 0.0
    for (offset, sample) in samples.enumerated() {
        let angle = 2 * Double.pi * 1000 * Double(start + offset) / sampleRate
        i += Double(sample) * cos(angle)
        q += Double(sample) * sin(angle)
    }
    let n = Double(samples.count)
    return (atan2(q, i), 2 * (i * i + q * q).squareRoot() / n)
}

/// Phase jumps (radians) of a continuous 1 kHz tone, measured per 10 ms window against the sample
/// index: a dropped or repeated run of samples shows up as a jump. Returns the largest.
func largestPhaseJump(_ samples: [Int16]) -> (jump: Double, at: Int, amplitude: Double) {
    guard samples.count >= 960 else { return (.infinity, 0, 0) }
    let reference = phaseOf1kHz(samples[0..<480], start: 0)
    var worst = (jump: 0.0, at: 0, amplitude: reference.amplitude)
    var window = 0
    while window + 480 <= samples.count {
        let measured = phaseOf1kHz(samples[window..<window + 480], start: window)
        var difference = abs(measured.phase - reference.phase)
        if difference > Double.pi { difference = 2 * Double.pi - difference }
        if difference > worst.jump { worst = (difference, window, measured.amplitude) }
        window += 480
    }
    return worst
}

/// "+ms[!]~latency" per read, relative to the first ("!" marks a discontinuity): for failure messages.
func trace(_ reads: [TimedChunk]) -> String {
    guard let start = reads.first?.readAt else { return "none" }
    return reads.map { read in
        let at = Int((read.readAt - start).millisecondsDouble)
        let latency = Int((read.readAt - read.chunk.captureTime).millisecondsDouble)
        return "+\(at)\(read.chunk.followsDiscontinuity ? "!" : "")~\(latency)"
    }.joined(separator: " ")
}

func percentile(_ values: [Double], _ fraction: Double) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return .nan }
    return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * fraction))]
}

/// Capture latency of each chunk: how long after its first frame was captured it was in our hands.
func latenciesMilliseconds(_ reads: [TimedChunk]) -> [Double] {
    reads.map { ($0.readAt - $0.chunk.captureTime).millisecondsDouble }
}

@Suite("ALSA capture through PulseAudio (paced, real time)", .serialized)
struct ALSAPulseCaptureTests {
    @Test("48 kHz in real time, no gaps, the played 1 kHz tone arrives intact, monotonic timestamps")
    func capturesToneInRealTime() throws {
        let pulse = try PulseFixture()
        try pulse.play(samples: tone(frequency: 1000, seconds: 3, amplitude: 8000))
        let capture = try ALSACapture(configuration: ALSACaptureConfiguration(
            device: "rtcamtest", pcmDefinition: pulse.pcmDefinition(name: "rtcamtest"),
            sampleRate: 48_000, channels: 1, periodMilliseconds: 10, periodsPerBuffer: 4))
        #expect(capture.sampleRate == 48_000)
        #expect(capture.channels == 1)
        #expect(capture.periodFrames == 480)
        #expect(capture.bufferFrames == 1920)

        let reads = try readPeriods(capture, count: 100)
        #expect(capture.statistics.reads == 100)
        #expect(capture.statistics.framesRead == 48_000)
        #expect(capture.statistics.recoveries == 0, "\(capture.statistics); reads: \(trace(reads))")
        #expect(capture.statistics.restarts == 0)
        #expect(!reads.contains { $0.chunk.followsDiscontinuity })

        // Every chunk is one period, in order, with no gap on the sample clock.
        for (index, read) in reads.enumerated() {
            #expect(read.chunk.frameCount == 480 && read.chunk.samples.count == 480 && read.chunk.channels == 1)
            #expect(read.chunk.firstFrameIndex == UInt64(index * 480))
        }

        // Real time: the frames after the first read arrived over the wall time since it.
        let first = reads[0], last = reads[reads.count - 1]
        let wall = Double((last.readAt - first.readAt).nanosecondsClamped) / 1e9
        let rate = Double(99 * 480) / wall
        #expect(abs(rate - 48_000) < 48_000 * 0.03, "measured \(rate) frames/s over \(wall) s")

        // Timestamps: strictly increasing, never after the read, on the sample clock within 15 ms,
        // and the audio is fresh (a period plus scheduling).
        var previous = MonotonicTime.zero
        var offClock = 0.0
        for read in reads {
            #expect(read.chunk.captureTime > previous)
            #expect(read.chunk.captureTime <= read.readAt)
            previous = read.chunk.captureTime
            let onClock = first.chunk.captureTime + .nanoseconds(Int64(read.chunk.firstFrameIndex) * 1_000_000_000 / 48_000)
            offClock = max(offClock, abs((read.chunk.captureTime - onClock).millisecondsDouble))
        }
        #expect(offClock < 15, "a capture time is \(offClock) ms off the sample clock")
        let latencies = latenciesMilliseconds(reads)
        #expect(percentile(latencies, 0.5) < 30, "median latency \(percentile(latencies, 0.5)) ms")
        #expect(percentile(latencies, 1) < 80, "worst latency \(percentile(latencies, 1)) ms")
        print("ALSA real time: \(Int(rate)) frames/s over \(wall) s; latency median \(percentile(latencies, 0.5)) ms, "
              + "p95 \(percentile(latencies, 0.95)) ms, max \(percentile(latencies, 1)) ms; timestamps ≤ \(offClock) ms off the sample clock")

        // Content: the tone (playing since before the capture opened), 1 kHz far above 1.5 kHz,
        // and its phase continuous over the whole second: no sample lost or repeated.
        let samples = reads.flatMap(\.chunk.samples)
        let tonePower = goertzelPower(samples[...], frequency: 1000)
        let offTonePower = goertzelPower(samples[...], frequency: 1500)
        #expect(tonePower > 10_000_000, "1 kHz power \(tonePower) (amplitude 8000 gives 16e6)")
        #expect(tonePower > 1000 * max(offTonePower, 1), "1 kHz \(tonePower) vs 1.5 kHz \(offTonePower)")
        let continuity = largestPhaseJump(samples)
        #expect(continuity.amplitude > 6000)
        #expect(continuity.jump < 0.1, "phase jump of \(continuity.jump) rad at sample \(continuity.at): samples lost or repeated")
    }

    @Test("the daemon's 20 ms periods from a sound server reporting a 650 ms delay: a reader 100 ms late loses nothing, capture times stay on the sample clock")
    func lateReaderBehindSoundServerLosesNothing() throws {
        let pulse = try PulseFixture()
        // pacat at its default (2 s) latency, as the interop test plays the tone: the null sink
        // starts at that latency, and for the first ~0.7 s after it switches to the capture's the
        // `pulse` PCM reports ~31,000 frames of delay while periods come every 20 ms (measured).
        try pulse.play(samples: tone(frequency: 1000, seconds: 12, amplitude: 8000), latencyMilliseconds: nil)
        let capture = try ALSACapture(configuration: ALSACaptureConfiguration(
            device: "rtcamdaemon", pcmDefinition: pulse.pcmDefinition(name: "rtcamdaemon"),
            sampleRate: 48_000, channels: 1, periodMilliseconds: 20, periodsPerBuffer: 4))
        #expect(capture.periodFrames == 960)
        _ = try capture.readPeriod()   // waits for the server's first audio (up to 2 s)
        var reads = try readPeriods(capture, count: 10)
        usleep(100_000)  // the audio thread is late once (an encoder opening, a busy core): 5 periods
        reads += try readPeriods(capture, count: 240)
        let statistics = capture.statistics
        #expect(statistics.recoveries == 0 && statistics.framesSkipped == 0 && statistics.framesLost == 0,
                "\(statistics); reads: \(trace(reads))")
        #expect(!reads.contains { $0.chunk.followsDiscontinuity })
        for (index, read) in reads.enumerated() {
            #expect(read.chunk.firstFrameIndex == UInt64((index + 1) * 960))
        }
        // Real time: 48 kHz ± 2 % over the wall time of the reads (the late one included).
        let wall = Double((reads[reads.count - 1].readAt - reads[0].readAt).nanosecondsClamped) / 1e9
        let rate = Double((reads.count - 1) * 960) / wall
        #expect(abs(rate - 48_000) < 48_000 * 0.02, "measured \(rate) frames/s over \(wall) s")
        // On the sample clock once the timeline settled (its first second): consecutive capture
        // times 20 ms apart, give or take the one-frame slew (20.8 µs) that follows the device.
        var irregular: [String] = []
        let settled = reads.dropFirst(50)
        for (previous, next) in zip(settled, settled.dropFirst()) {
            let step = (next.chunk.captureTime - previous.chunk.captureTime).nanosecondsClamped
            if abs(step - 20_000_000) > 20_834 { irregular.append("\(next.chunk.firstFrameIndex): \(Double(step) / 1e6) ms") }
        }
        #expect(irregular.isEmpty, "capture times off the sample clock at \(irregular)")
        let continuity = largestPhaseJump(reads.flatMap(\.chunk.samples))
        #expect(continuity.jump < 0.1, "phase jump of \(continuity.jump) rad at sample \(continuity.at): samples lost or repeated")
        print("ALSA late reader behind pulse: \(Int(rate)) frames/s over \(wall) s, \(statistics)")
    }

    @Test("a reader stalled 500 ms recovers (counted), flags the gap, and keeps capturing with low latency")
    func recoversFromStall() throws {
        let pulse = try PulseFixture()
        try pulse.play(samples: tone(frequency: 1000, seconds: 3, amplitude: 8000))
        let capture = try ALSACapture(configuration: ALSACaptureConfiguration(
            device: "rtcamtest", pcmDefinition: pulse.pcmDefinition(name: "rtcamtest"),
            sampleRate: 48_000, channels: 1, periodMilliseconds: 10, periodsPerBuffer: 4))
        let before = try readPeriods(capture, count: 20)
        #expect(capture.statistics.recoveries == 0)
        #expect(!before.contains { $0.chunk.followsDiscontinuity })

        usleep(500_000)  // the consumer stalls: 500 ms against a 40 ms buffer

        let after = try readPeriods(capture, count: 40)
        let statistics = capture.statistics
        // PulseAudio buffers behind a late client instead of overrunning: the backlog is skipped
        // (a real card reports -EPIPE instead: xrunsRecovered).
        #expect(statistics.recoveries == 1, "\(statistics); reads after the stall: \(trace(after))")
        #expect(statistics.backlogsSkipped + statistics.xrunsRecovered == 1)
        #expect(statistics.framesSkipped >= 19_200, "skipped only \(statistics.framesSkipped) frames of a 500 ms stall")
        #expect(after.first?.chunk.followsDiscontinuity == true)
        #expect(!after.dropFirst().contains { $0.chunk.followsDiscontinuity })

        // The sample clock jumps over the lost half second.
        let endBefore = before[before.count - 1].chunk.firstFrameIndex + 480
        let jump = Double((after[0].chunk.firstFrameIndex - endBefore)) / 48_000
        #expect(abs(jump - 0.5) < 0.1, "sample clock jumped \(jump) s over a 500 ms stall")
        #expect(statistics.framesLost == after[0].chunk.firstFrameIndex - endBefore)
        #expect(after[0].chunk.captureTime > before[before.count - 1].chunk.captureTime + .milliseconds(400))

        // Fresh audio right away and paced again: no burst of stale periods after the stall.
        let latencies = latenciesMilliseconds(after)
        #expect(percentile(latencies, 1) < 80, "latency after the stall up to \(percentile(latencies, 1)) ms")
        let pace = Double((after[after.count - 1].readAt - after[0].readAt).nanosecondsClamped) / 1e9
        #expect(pace > 0.3, "39 periods after the stall came in \(pace) s: stale audio was delivered")
        print("ALSA stall: \(statistics); latency after it median \(percentile(latencies, 0.5)) ms, max \(percentile(latencies, 1)) ms")

        // And the audio after the gap is continuous tone.
        let continuity = largestPhaseJump(after.flatMap(\.chunk.samples))
        #expect(continuity.amplitude > 6000)
        #expect(continuity.jump < 0.1, "phase jump of \(continuity.jump) rad at sample \(continuity.at) after the stall")
    }
}

@Suite("ALSA capture through PulseAudio: plug layer and server stalls")
struct ALSAPlugCaptureTests {
    @Test("a 44.1 kHz device is resampled to 48 kHz stereo by the plug layer, in real time, the tone intact")
    func resamplesThroughPlug() throws {
        let pulse = try PulseFixture()
        try pulse.play(samples: tone(frequency: 1000, seconds: 3, amplitude: 8000))
        let capture = try ALSACapture(configuration: ALSACaptureConfiguration(
            device: "rtcamplug", pcmDefinition: pulse.resamplingPCMDefinition(name: "rtcamplug", deviceRate: 44_100),
            sampleRate: 48_000, channels: 2, periodMilliseconds: 20, periodsPerBuffer: 4))
        #expect(capture.sampleRate == 48_000)
        #expect(capture.channels == 2)
        #expect(capture.periodFrames == 960)

        let reads = try readPeriods(capture, count: 30)
        #expect(capture.statistics.recoveries == 0, "\(capture.statistics)")
        let wall = Double((reads[reads.count - 1].readAt - reads[0].readAt).nanosecondsClamped) / 1e9
        let rate = Double(29 * 960) / wall
        #expect(abs(rate - 48_000) < 48_000 * 0.05, "measured \(rate) frames/s")

        // Both channels carry the (mono) tone at 1 kHz on the 48 kHz clock: resampled, not just
        // relabelled (a 44.1 kHz stream read as 48 kHz would put it at 1088 Hz).
        let samples = reads.dropFirst(5).flatMap(\.chunk.samples)
        for channel in 0..<2 {
            let channelSamples = stride(from: channel, to: samples.count, by: 2).map { samples[$0] }
            let power = goertzelPower(channelSamples[...], frequency: 1000)
            let mislabelled = goertzelPower(channelSamples[...], frequency: 1000 * 48_000 / 44_100)
            #expect(power > 8_000_000, "channel \(channel): 1 kHz power \(power)")
            #expect(power > 100 * max(mislabelled, 1), "channel \(channel): 1 kHz \(power) vs 1088 Hz \(mislabelled)")
        }
    }

    @Test("a sound server frozen 300 ms sends a backlog: it is skipped (counted, flagged) and capture stays fresh")
    func skipsServerBacklog() throws {
        let pulse = try PulseFixture()
        try pulse.play(samples: tone(frequency: 1000, seconds: 3, amplitude: 8000))
        let capture = try ALSACapture(configuration: ALSACaptureConfiguration(
            device: "rtcamfreeze", pcmDefinition: pulse.pcmDefinition(name: "rtcamfreeze"),
            sampleRate: 48_000, channels: 1, periodMilliseconds: 10, periodsPerBuffer: 4))
        _ = try readPeriods(capture, count: 10)
        // This (audio) thread keeps reading, blocked in readPeriod while the server is frozen.
        let freezer = try pulse.freezeServerLater(afterMicroseconds: 30_000, forMicroseconds: 300_000)
        let after = try readPeriods(capture, count: 40)
        pthread_join(freezer, nil)
        let statistics = capture.statistics
        #expect(statistics.backlogsSkipped == 1, "\(statistics); reads: \(trace(after))")
        #expect(statistics.framesSkipped >= 9_600, "skipped \(statistics.framesSkipped) frames after a 300 ms freeze")
        #expect(after.filter(\.chunk.followsDiscontinuity).count == 1)
        // Every chunk delivered after the skip is fresh.
        if let skip = after.firstIndex(where: \.chunk.followsDiscontinuity) {
            let latencies = latenciesMilliseconds(Array(after[skip...]))
            #expect(percentile(latencies, 1) < 80, "latency after the skip up to \(percentile(latencies, 1)) ms")
        }
    }
}

@Suite("ALSA capture, no sound server")
struct ALSAFileCaptureTests {
    @Test("the file plugin's infile comes out sample-exact, stereo interleaved as S16_LE")
    func fileInfileContent() throws {
        let directory = try TemporaryDirectory()
        // Stereo: left = counter, right = -counter, so interleaving and byte order are both visible.
        var bytes: [UInt8] = []
        let frames = 9_600
        for i in 0..<frames {
            for value in [Int16(truncatingIfNeeded: i), Int16(truncatingIfNeeded: -i)] {
                let bits = UInt16(bitPattern: value)
                bytes.append(UInt8(truncatingIfNeeded: bits))
                bytes.append(UInt8(truncatingIfNeeded: bits >> 8))
            }
        }
        let infile = try directory.write("in.raw", bytes: bytes)
        let definition = """
            pcm.filetest { type file; slave.pcm { type null }; file "/dev/null"; infile "\(infile)"; format "raw" }
            """
        let capture = try ALSACapture(configuration: ALSACaptureConfiguration(
            device: "filetest", pcmDefinition: definition, sampleRate: 48_000, channels: 2, periodMilliseconds: 10))
        #expect(capture.channels == 2)
        #expect(capture.periodFrames == 480)
        var samples: [Int16] = []
        while samples.count < frames * 2 {
            let chunk = try capture.readPeriod()
            #expect(chunk.channels == 2)
            #expect(chunk.frameCount == 480)
            #expect(chunk.samples.count == 960)
            samples += chunk.samples
        }
        var mismatches = 0
        for i in 0..<frames where samples[2 * i] != Int16(truncatingIfNeeded: i) || samples[2 * i + 1] != Int16(truncatingIfNeeded: -i) {
            mismatches += 1
        }
        #expect(mismatches == 0)
        #expect(capture.statistics.framesRead == UInt64(frames))
    }

    @Test("period and buffer negotiation: 10 and 20 ms periods, 2 to 8 periods per buffer, mono and stereo")
    func negotiation() throws {
        for (milliseconds, periods, channels) in [(10, 4, 1), (20, 4, 2), (10, 2, 2), (20, 8, 1)] as [(UInt32, UInt32, UInt32)] {
            let capture = try ALSACapture(configuration: ALSACaptureConfiguration(
                device: "nulltest", pcmDefinition: "pcm.nulltest { type null }", sampleRate: 48_000, channels: channels,
                periodMilliseconds: milliseconds, periodsPerBuffer: periods))
            #expect(capture.sampleRate == 48_000)
            #expect(capture.channels == channels)
            #expect(capture.periodFrames == Int(48 * milliseconds))
            #expect(capture.bufferFrames == Int(48 * milliseconds * periods))
            let chunk = try capture.readPeriod()
            #expect(chunk.frameCount == capture.periodFrames)
            #expect(chunk.samples.count == capture.periodFrames * Int(channels))
        }
    }

    @Test("configurations outside S16 mono/stereo, 10–20 ms periods, 2–8 periods are refused before opening")
    func invalidConfigurations() {
        let invalid = [
            ALSACaptureConfiguration(device: "x", pcmDefinition: "pcm.x { type null }", channels: 3),
            ALSACaptureConfiguration(device: "x", pcmDefinition: "pcm.x { type null }", channels: 0),
            ALSACaptureConfiguration(device: "x", pcmDefinition: "pcm.x { type null }", periodMilliseconds: 5),
            ALSACaptureConfiguration(device: "x", pcmDefinition: "pcm.x { type null }", periodMilliseconds: 40),
            ALSACaptureConfiguration(device: "x", pcmDefinition: "pcm.x { type null }", periodsPerBuffer: 1),
            ALSACaptureConfiguration(device: "x", pcmDefinition: "pcm.x { type null }", sampleRate: 0),
        ]
        for configuration in invalid {
            #expect {
                _ = try ALSACapture(configuration: configuration)
            } throws: { error in
                guard case .invalidConfiguration = error as? ALSAError else { return false }
                return true
            }
        }
    }

    @Test("after close() every read throws .closed; close is idempotent")
    func closeThenRead() throws {
        let capture = try ALSACapture(configuration: ALSACaptureConfiguration(device: "n", pcmDefinition: "pcm.n { type null }"))
        _ = try capture.readPeriod()
        capture.close()
        capture.close()
        #expect(capture.isClosed)
        #expect(throws: ALSAError.closed) { _ = try capture.readPeriod() }
    }

    @Test("an unknown PCM name and a malformed definition fail with typed errors")
    func openErrors() throws {
        #expect {
            _ = try ALSACapture(configuration: ALSACaptureConfiguration(device: "rtcam_no_such_pcm", pcmDefinition: "pcm.other { type null }"))
        } throws: { error in
            guard case let .open(device, code, _) = error as? ALSAError else { return false }
            return device == "rtcam_no_such_pcm" && code < 0
        }
        #expect {
            _ = try ALSACapture(configuration: ALSACaptureConfiguration(device: "x", pcmDefinition: "pcm.x { type null"))
        } throws: { error in
            guard case .configuration = error as? ALSAError else { return false }
            return true
        }
    }
}
