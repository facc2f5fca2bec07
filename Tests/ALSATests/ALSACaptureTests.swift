import ALSA
import Glibc
import RTCBase
import Testing

/// Reads from `capture` for `seconds` of wall time, driven by poll(2) on its poll descriptors the
/// way the daemon's loop does. Returns the chunks and the monotonic times each was read at.
func captureFor(_ capture: ALSACapture, seconds: Double) throws -> [(chunk: ALSAAudioChunk, readAt: MonotonicTime)] {
    var result: [(ALSAAudioChunk, MonotonicTime)] = []
    let end = monotonicNow() + .nanoseconds(Int64(seconds * 1e9))
    while monotonicNow() < end {
        let descriptors = capture.pollDescriptors
        var fds = descriptors.map { pollfd(fd: $0.fileDescriptor, events: $0.events, revents: 0) }
        _ = poll(&fds, nfds_t(fds.count), 5)
        // The pulse plugin's descriptor stays readable even when nothing is, and its revents
        // translation can say "not readable" while frames are available (both measured with
        // alsa-lib 1.2.8 + alsa-plugins 1.2.7): so read on a 5 ms pace whatever poll says, and
        // never spin (a spinning loop starves the plugin's thread). The daemon needs the same.
        if !capture.isReadable(revents: fds.map(\.revents)) { usleep(5_000) }
        while true {
            let now = monotonicNow()
            guard let chunk = try capture.read(now: now) else { break }
            result.append((chunk, now))
        }
    }
    return result
}

/// The 1 kHz phase (radians) of `samples` whose first sample has absolute index `start`.
func phaseOf1kHz(_ samples: ArraySlice<Int16>, start: Int) -> (phase: Double, amplitude: Double) {
    var i = 0.0, q = 0.0
    for (offset, sample) in samples.enumerated() {
        let angle = 2 * Double.pi * 1000 * Double(start + offset) / 48_000
        i += Double(sample) * cos(angle)
        q += Double(sample) * sin(angle)
    }
    let n = Double(samples.count)
    return (atan2(q, i), 2 * (i * i + q * q).squareRoot() / n)
}

@Suite("ALSA capture through PulseAudio (paced, real time)")
struct ALSAPulseCaptureTests {
    @Test("48 kHz in real time, no gaps, the played 1 kHz tone arrives intact, monotonic timestamps")
    func capturesToneInRealTime() throws {
        let pulse = try PulseFixture()
        try pulse.play(samples: tone(frequency: 1000, seconds: 3, amplitude: 8000))
        let capture = try ALSACapture(configuration: ALSACaptureConfiguration(
            device: "rtcamtest", pcmDefinition: pulse.pcmDefinition(name: "rtcamtest"),
            sampleRate: 48_000, channels: 1, periodMilliseconds: 10))
        #expect(capture.sampleRate == 48_000)
        #expect(capture.channels == 1)
        #expect(capture.periodFrames >= 480 && capture.periodFrames <= 960)
        #expect(!capture.pollDescriptors.isEmpty)

        let reads = try captureFor(capture, seconds: 1.2)
        try #require(reads.count > 10, "too few reads: \(reads.count)")

        // Rate: frames delivered between the first and the last read over the wall time between them.
        let first = reads[0], last = reads[reads.count - 1]
        let frames = Double(last.chunk.firstFrameIndex + UInt64(last.chunk.frameCount) - first.chunk.firstFrameIndex - UInt64(first.chunk.frameCount))
        let wall = Double((last.readAt - first.readAt).nanosecondsClamped) / 1e9
        let rate = frames / wall
        #expect(abs(rate - 48_000) < 48_000 * 0.05, "measured \(rate) frames/s over \(wall) s")
        #expect(capture.statistics.recoveries == 0)
        #expect(!reads.contains { $0.chunk.followsDiscontinuity })

        // Timestamps: monotonic, and each chunk's capture time = first + its sample index / rate
        // within 40 ms (delay estimates jitter by a period or two).
        var previous = MonotonicTime.zero
        for read in reads {
            #expect(read.chunk.captureTime >= previous)
            #expect(read.chunk.captureTime <= read.readAt)
            previous = read.chunk.captureTime
            let expected = first.chunk.captureTime + .nanoseconds(Int64(read.chunk.firstFrameIndex - first.chunk.firstFrameIndex) * 1_000_000_000 / 48_000)
            #expect(abs((read.chunk.captureTime - expected).millisecondsDouble) < 40, "chunk at frame \(read.chunk.firstFrameIndex)")
        }

        // Content: the last ~half second is the tone (playback started with a little latency).
        let samples = reads.flatMap(\.chunk.samples)
        try #require(samples.count > 24_000)
        let tail = samples[(samples.count - 24_000)...]
        let tonePower = goertzelPower(tail, frequency: 1000)
        let offTonePower = goertzelPower(tail, frequency: 1500)
        #expect(tonePower > 1_000_000, "1 kHz power \(tonePower) (amplitude 8000 gives 16e6)")
        #expect(tonePower > 1000 * max(offTonePower, 1), "1 kHz \(tonePower) vs 1.5 kHz \(offTonePower)")

        // Continuity: a dropped or duplicated run of samples shifts the 1 kHz phase measured against the
        // absolute sample index. Every 10 ms window of the tone must keep the same phase.
        let base = samples.count - 24_000
        let reference = phaseOf1kHz(samples[base..<base + 480], start: base)
        #expect(reference.amplitude > 6000, "tone amplitude \(reference.amplitude)")
        var window = base
        while window + 480 <= samples.count {
            let measured = phaseOf1kHz(samples[window..<window + 480], start: window)
            var difference = abs(measured.phase - reference.phase)
            if difference > Double.pi { difference = 2 * Double.pi - difference }
            #expect(difference < 0.1, "phase jump of \(difference) rad at sample \(window): samples lost or repeated")
            window += 480
        }
    }

    @Test("a reader stalled 500 ms recovers (counted), flags the gap, and keeps capturing with low latency")
    func recoversFromStall() throws {
        let pulse = try PulseFixture()
        try pulse.play(samples: tone(frequency: 1000, seconds: 3, amplitude: 8000))
        let capture = try ALSACapture(configuration: ALSACaptureConfiguration(
            device: "rtcamtest", pcmDefinition: pulse.pcmDefinition(name: "rtcamtest"),
            sampleRate: 48_000, channels: 1, periodMilliseconds: 10, periodsPerBuffer: 4))
        let before = try captureFor(capture, seconds: 0.2)
        #expect(!before.isEmpty)
        #expect(capture.statistics.recoveries == 0)

        usleep(500_000)  // the consumer stalls: 500 ms against a 40 ms buffer

        let after = try captureFor(capture, seconds: 0.4)
        #expect(capture.statistics.recoveries >= 1, "stall was not detected: \(capture.statistics)")
        #expect(after.first?.chunk.followsDiscontinuity == true)
        // Capture continues: at least 0.3 s of audio after the stall.
        let framesAfter = after.reduce(0) { $0 + $1.chunk.frameCount }
        #expect(framesAfter > 14_400, "only \(framesAfter) frames after the stall")
        // And latency is bounded again: the newest chunk is at most ~3 buffers old when read.
        if let newest = after.last {
            #expect((newest.readAt - newest.chunk.captureTime).millisecondsDouble < 150)
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
        var samples: [Int16] = []
        let deadline = monotonicNow() + .seconds(2)
        while samples.count < frames * 2, monotonicNow() < deadline {
            if let chunk = try capture.read(now: monotonicNow()) {
                #expect(chunk.channels == 2)
                #expect(chunk.samples.count == chunk.frameCount * 2)
                samples += chunk.samples
            } else {
                usleep(2_000)
            }
        }
        try #require(samples.count >= frames * 2)
        var mismatches = 0
        for i in 0..<frames where samples[2 * i] != Int16(truncatingIfNeeded: i) || samples[2 * i + 1] != Int16(truncatingIfNeeded: -i) {
            mismatches += 1
        }
        #expect(mismatches == 0)
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
