import ALSA
import Glibc
import RTCBase
import Synchronization
import Testing

/// A signal that names its own frames: frame n carries n's low 16 bits on the left channel and
/// 0x4000 | its next 14 bits on the right (the 0x4000 marker tells it from snd-aloop's silence).
enum CountingSignal {
    static func samples(from start: UInt32, frames: Int) -> [Int16] {
        var samples: [Int16] = []
        samples.reserveCapacity(frames * 2)
        for n in start..<start + UInt32(frames) {
            samples.append(Int16(bitPattern: UInt16(truncatingIfNeeded: n)))
            samples.append(Int16(bitPattern: 0x4000 | UInt16(truncatingIfNeeded: n >> 16) & 0x3FFF))
        }
        return samples
    }

    /// The frame number in a captured stereo frame, or nil for silence or anything else.
    static func frameNumber(left: Int16, right: Int16) -> UInt32? {
        let high = UInt16(bitPattern: right)
        guard high & 0xC000 == 0x4000 else { return nil }
        return UInt32(high & 0x3FFF) << 16 | UInt32(UInt16(bitPattern: left))
    }
}

/// rtcam's ALSAPlayback on its own thread, playing the counting signal into hw:Loopback,0,0 until stopped.
final class LoopbackPlayer: Sendable {
    private let state: PlayerState
    private let thread: TestThread
    private let joined = Atomic<Bool>(false)

    init(device: String = "hw:Loopback,0,0") throws {
        let state = PlayerState()
        self.state = state
        thread = try TestThread { state.run(device: device) }
    }

    deinit { _ = stop() }

    /// The player's thread state: one writer, read by the test after `stop()` joined the thread.
    final class PlayerState: Sendable {
        let stopRequested = Atomic<Bool>(false)
        let outcome = Mutex<(framesWritten: UInt64, underruns: Int, error: String?)>((0, 0, nil))

        func run(device: String) {
            do {
                // Half a second of ring: the player survives the guest being descheduled on a busy host.
                let playback = try ALSAPlayback(configuration: ALSAPlaybackConfiguration(
                    device: device, sampleRate: 48_000, channels: 2, periodMilliseconds: 50, periodsPerBuffer: 10))
                defer { playback.close() }
                var next: UInt32 = 0
                let chunk = playback.periodFrames
                while !stopRequested.load(ordering: .relaxed) {
                    try playback.write(CountingSignal.samples(from: next, frames: chunk))
                    next += UInt32(chunk)
                    let statistics = playback.statistics
                    outcome.withLock { $0.framesWritten = statistics.framesWritten; $0.underruns = statistics.underrunsRecovered }
                }
            } catch {
                outcome.withLock { $0.error = "\(error)" }
            }
        }
    }

    var underruns: Int { state.outcome.withLock { $0.underruns } }

    /// Stops and joins the thread (once); what it wrote, its underruns and its error.
    func stop() -> (framesWritten: UInt64, underruns: Int, error: String?) {
        state.stopRequested.store(true, ordering: .relaxed)
        if !joined.exchange(true, ordering: .acquiringAndReleasing) { thread.join() }
        return state.outcome.withLock { $0 }
    }
}

struct TimedChunk {
    var chunk: ALSAAudioChunk
    var readAt: MonotonicTime
}

/// Reads `count` periods.
func readChunks(_ capture: ALSACapture, count: Int) throws -> [TimedChunk] {
    var chunks: [TimedChunk] = []
    for _ in 0..<count {
        let chunk = try capture.readPeriod()
        chunks.append(TimedChunk(chunk: chunk, readAt: monotonicNow()))
    }
    return chunks
}

/// Frame numbers of the signal in the chunks, in order; nil entries are frames without the signal.
func frameNumbers(_ chunks: [TimedChunk]) -> [UInt32?] {
    var numbers: [UInt32?] = []
    for timed in chunks {
        let samples = timed.chunk.samples
        for i in 0..<timed.chunk.frameCount { numbers.append(CountingSignal.frameNumber(left: samples[2 * i], right: samples[2 * i + 1])) }
    }
    return numbers
}

/// Where the captured signal does not continue with the next frame number.
struct SignalBreaks: CustomStringConvertible {
    /// Frames skipped: lost on the capture side (an overrun).
    var forward = 0
    /// Frames seen again: snd-aloop played stale ring contents because the player was late.
    var backward = 0
    /// Frames without the signal: snd-aloop's silence while the player underran.
    var silent = 0
    var first: String?

    /// The reference signal itself was broken (the player thread did not run in time).
    var playerStarved: Bool { backward > 0 || silent > 0 }
    var total: Int { forward + backward + silent }
    var description: String { "\(forward) forward, \(backward) backward jumps, \(silent) silent frames; first at \(first ?? "-")" }

    init(_ numbers: [UInt32?]) {
        for (i, (a, b)) in zip(numbers, numbers.dropFirst()).enumerated() {
            guard let a, let b else {
                silent += 1
                if first == nil { first = "frame \(i + 1): silence" }
                continue
            }
            guard b != a &+ 1 else { continue }
            if b > a { forward += 1 } else { backward += 1 }
            if first == nil { first = "frame \(i + 1): \(a) → \(b)" }
        }
    }
}

/// Opens the capture end and waits (up to 3 s) until the player's signal comes through.
func openLoopbackCapture(periodMilliseconds: UInt32, periodsPerBuffer: UInt32) throws -> ALSACapture {
    let capture = try ALSACapture(configuration: ALSACaptureConfiguration(
        device: "hw:Loopback,1,0", sampleRate: 48_000, channels: 2, periodMilliseconds: periodMilliseconds,
        periodsPerBuffer: periodsPerBuffer))
    for _ in 0..<300 {
        let chunk = try capture.readPeriod()
        let n = chunk.frameCount - 1
        if CountingSignal.frameNumber(left: chunk.samples[2 * n], right: chunk.samples[2 * n + 1]) != nil { return capture }
    }
    throw KernelDriverTestError("no signal from hw:Loopback,1,0 after 3 s of capture")
}

extension KernelDrivers {
    @Suite("ALSACapture on snd-aloop, fed by ALSAPlayback")
    struct LoopbackAudio {
        @Test("48 kHz stereo in real time: every frame of the played signal arrives once, in order; timestamps on the sample clock")
        func continuity() throws {
            let player = try LoopbackPlayer()
            // 20 ms periods, 160 ms of ring: TCG on a shared host needs the margin.
            let capture = try openLoopbackCapture(periodMilliseconds: 20, periodsPerBuffer: 8)
            #expect(capture.sampleRate == 48_000 && capture.channels == 2 && capture.periodFrames == 960)
            // A window counts only if the reference was whole and the guest kept running: on a
            // loaded host TCG can leave a vCPU unscheduled for longer than a ring (seen at load 10:
            // the player's half second, or the capture's 160 ms, with reads 10 s apart).
            var chunks: [TimedChunk] = []
            var found = SignalBreaks([])
            var recoveriesBefore = 0
            var starvedWindows = 0
            while true {
                recoveriesBefore = capture.statistics.recoveries
                let underrunsBefore = player.underruns
                chunks = try readChunks(capture, count: 75)
                found = SignalBreaks(frameNumbers(chunks))
                let gap = longestGap(chunks.map(\.readAt))
                if !found.playerStarved && player.underruns == underrunsBefore && gap < .milliseconds(140) { break }
                starvedWindows += 1
                print("snd-aloop: the player fell behind (\(found)) or the guest stalled (\(milliseconds(gap)) ms between reads); measuring again")
                try #require(starvedWindows < 5, "the player could not keep snd-aloop fed in 5 windows: the guest is starved by its host")
            }
            let statistics = capture.statistics
            capture.close()
            let report = player.stop()
            #expect(report.error == nil, "player: \(report.error ?? "")")

            // Continuity: the frame numbers run on without a gap, repeat or silence.
            let numbers = frameNumbers(chunks)
            #expect(found.total == 0, "breaks in the signal: \(found)")
            #expect(statistics.recoveries == recoveriesBefore, "\(statistics)")
            #expect(!chunks.contains { $0.chunk.followsDiscontinuity })
            for (a, b) in zip(chunks, chunks.dropFirst()) where b.chunk.firstFrameIndex != a.chunk.firstFrameIndex + 960 {
                Issue.record("sample clock jumps from \(a.chunk.firstFrameIndex) to \(b.chunk.firstFrameIndex)")
                break
            }

            // Rate: 74 periods after the first read arrived over the wall time since it.
            let first = chunks[0], last = chunks[chunks.count - 1]
            let wall = seconds(last.readAt - first.readAt)
            let rate = Double(74 * 960) / wall
            #expect(abs(rate / 48_000 - 1) < 0.05, "\(rate) frames/s over \(wall) s")

            // Capture times: increasing, never after the read, and on the sample clock: capture time
            // minus sample position stays within a band (TCG slack; the timeline follows the lower
            // envelope of late reads, so a late first read moves it down once).
            var ordered = true
            for (a, b) in zip(chunks, chunks.dropFirst()) where !(b.chunk.captureTime > a.chunk.captureTime) { ordered = false }
            let offsets = chunks.map { milliseconds($0.chunk.captureTime - first.chunk.captureTime)
                - Double($0.chunk.firstFrameIndex - first.chunk.firstFrameIndex) / 48 }
            let offClock = (offsets.max() ?? 0) - (offsets.min() ?? 0)
            #expect(ordered)
            #expect(chunks.allSatisfy { $0.chunk.captureTime <= $0.readAt })
            #expect(offClock < 50, "capture times stray \(offClock) ms around the sample clock")
            print("snd-aloop: \(Int(rate)) frames/s over \(wall) s, \(numbers.count) frames continuous, capture times ≤ \(offClock) ms off; "
                  + "player wrote \(report.framesWritten) frames, \(report.underruns) underruns, \(starvedWindows) windows measured again")
        }

        @Test("a reader stalled 300 ms overruns: -EPIPE recovered, the gap flagged and sized like the signal's, capture continuous again")
        func xrunRecovery() throws {
            let begun = monotonicNow()
            let player = try LoopbackPlayer()
            let capture = try openLoopbackCapture(periodMilliseconds: 10, periodsPerBuffer: 4)  // 40 ms of ring
            let signalAfter = milliseconds(monotonicNow() - begun)
            // As in `continuity`, a try counts only if the player kept the reference signal whole.
            var before: [TimedChunk] = [], after: [TimedChunk] = []
            var statisticsBefore = capture.statistics
            var starvedTries = 0
            while true {
                statisticsBefore = capture.statistics
                let underrunsBefore = player.underruns
                before = try readChunks(capture, count: 20)
                sleepMilliseconds(300)  // the reader stalls: 300 ms against a 40 ms ring
                after = try readChunks(capture, count: 40)
                let starved = SignalBreaks(frameNumbers(before)).playerStarved || SignalBreaks(frameNumbers(after)).playerStarved
                let gap = max(longestGap(before.map(\.readAt)), longestGap(after.map(\.readAt)))
                if !starved && player.underruns == underrunsBefore && gap < .milliseconds(35) { break }
                starvedTries += 1
                print("snd-aloop xrun: the player fell behind or the guest stalled (\(milliseconds(gap)) ms between reads); trying again")
                try #require(starvedTries < 5, "the player could not keep snd-aloop fed in 5 tries: the guest is starved by its host")
            }
            let statistics = capture.statistics
            capture.close()
            let stopping = monotonicNow()
            let report = player.stop()
            let stopTook = milliseconds(monotonicNow() - stopping)
            #expect(report.error == nil, "player: \(report.error ?? "")")
            #expect(stopTook < 1000, "the player took \(stopTook) ms to stop")

            #expect(statistics.xrunsRecovered - statisticsBefore.xrunsRecovered == 1, "\(statistics)")
            #expect(statistics.restarts - statisticsBefore.restarts == 1)
            #expect(!before.contains { $0.chunk.followsDiscontinuity })
            #expect(after[0].chunk.followsDiscontinuity)
            #expect(!after.dropFirst().contains { $0.chunk.followsDiscontinuity })

            // The frames lost, by the signal and by rtcam's timeline (from the time that passed).
            let lastBefore = try #require(frameNumbers([before[before.count - 1]]).last ?? nil)
            let firstAfter = try #require(frameNumbers([after[0]]).first ?? nil)
            let lostBySignal = Double(firstAfter) - Double(lastBefore) - 1
            let endBefore = before[before.count - 1].chunk.firstFrameIndex + 480
            let lostByTimeline = Double(after[0].chunk.firstFrameIndex - endBefore)
            #expect((0.2 * 48_000...0.7 * 48_000).contains(lostBySignal), "the signal skipped \(lostBySignal / 48) ms for a 300 ms stall")
            // The timeline sizes the gap from elapsed time, so a TCG vCPU descheduled around the
            // stall shifts it; 100 ms of slack on a 300 ms stall still tells a sized gap from none.
            #expect(abs(lostByTimeline - lostBySignal) < 0.1 * 48_000,
                    "timeline says \(lostByTimeline / 48) ms lost, the signal \(lostBySignal / 48) ms")
            #expect(statistics.framesLost - statisticsBefore.framesLost == UInt64(lostByTimeline))

            // Continuous on both sides of the gap.
            let beforeBreaks = SignalBreaks(frameNumbers(before)), afterBreaks = SignalBreaks(frameNumbers(after))
            #expect(beforeBreaks.total == 0, "before the stall: \(beforeBreaks)")
            #expect(afterBreaks.total == 0, "after the xrun: \(afterBreaks)")
            print("snd-aloop xrun: signal after \(signalAfter) ms, player stopped in \(stopTook) ms, \(starvedTries) tries again; \(statistics); "
                  + "lost \(lostBySignal / 48) ms by the signal, \(lostByTimeline / 48) ms by the timeline")
        }
    }
}
