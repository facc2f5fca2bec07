import RTCBase
import Testing

@testable import Talkback
import EchoCanceller

/// A talker sending a 20 ms Opus packet every 20 ms through a simulated network (seeded delay,
/// jitter, loss), and a speaker asking for a frame every 20 ms: all on a virtual clock.
struct TalkSimulation {
    struct Link {
        var baseDelay: Duration = .milliseconds(15)
        /// Extra delay, uniform in 0...jitter, per packet (seeded): packets overtake each other when it exceeds 20 ms.
        var jitter: (_ time: Duration) -> Duration = { _ in .zero }
        var lossPercent = 0
    }

    var buffer: AdaptiveJitterBuffer
    var link: Link
    var random: SeededRandom
    var firstTimestamp: UInt32 = 123_456
    /// Playout: the id of every frame played (nil: concealment/silence), the recovered ids.
    var played: [Int] = []
    var recovered: [Int] = []
    var concealed = 0
    var silentAfterStart = 0
    var lost: Set<Int> = []
    var latencies: [Duration] = []
    var targets: [(Duration, Duration)] = []
    var levels: [(Duration, Duration)] = []

    init(seed: UInt64, link: Link, configuration: JitterBufferConfiguration = JitterBufferConfiguration()) {
        buffer = AdaptiveJitterBuffer(configuration: configuration)
        self.link = link
        random = SeededRandom(seed: seed)
    }

    static func payload(_ id: Int) -> [UInt8] { [UInt8(truncatingIfNeeded: id >> 8), UInt8(truncatingIfNeeded: id)] }
    static func id(_ payload: [UInt8]) -> Int { Int(payload[0]) << 8 | Int(payload[1]) }

    /// Sends packets 0..<count (one per 20 ms from `start`), pulls every 20 ms (at `phase` past the
    /// sending grid) until `seconds` are over.
    mutating func run(packets count: Int, seconds: Int, start: MonotonicTime = MonotonicTime(seconds: 10),
                      phase: Duration = .milliseconds(7)) {
        var arrivals: [(MonotonicTime, Int)] = []
        for id in 0..<count {
            let sent = start + .milliseconds(20 * id)
            if link.lossPercent > 0, Int(random.next() % 100) < link.lossPercent { lost.insert(id); continue }
            let jitterBound = link.jitter(sent - start).nanosecondsClamped
            let extra = jitterBound > 0 ? Int64(random.next() % UInt64(jitterBound + 1)) : 0
            arrivals.append((sent + link.baseDelay + .nanoseconds(extra), id))
        }
        arrivals.sort { $0.0 < $1.0 }
        var arrivalOf: [Int: MonotonicTime] = [:]
        for (time, id) in arrivals { arrivalOf[id] = time }
        var next = 0
        var started = false
        let pulls = seconds * 50
        for pull in 0..<pulls {
            let now = start + phase + .milliseconds(20 * pull)
            while next < arrivals.count, arrivals[next].0 <= now {
                let id = arrivals[next].1
                buffer.insert(ssrc: 0xCAFE, timestamp: firstTimestamp &+ UInt32(id * 960), samples: 960,
                              payload: Self.payload(id), arrival: arrivals[next].0)
                next += 1
            }
            let output = buffer.nextFrame(now: now)
            #expect(output.samples == 960)
            switch output.frame {
            case let .audio(payload):
                started = true
                let id = Self.id(payload)
                played.append(id)
                if let arrival = arrivalOf[id] { latencies.append(now - arrival) }
            case let .recovered(next):
                recovered.append(Self.id(next) - 1)
            case .concealed:
                concealed += 1
            case .silence:
                if started { silentAfterStart += 1 }
            }
            targets.append((now - start, buffer.targetDelay))
            levels.append((now - start, buffer.bufferedDelay))
        }
    }
}

@Suite("Adaptive jitter buffer (talkback, issue 17)")
struct JitterBufferTests {
    @Test func perfectNetworkPlaysEveryPacketInOrderAtTheMinimumTarget() {
        var simulation = TalkSimulation(seed: 1, link: TalkSimulation.Link())
        simulation.run(packets: 500, seconds: 11)
        #expect(simulation.played == Array(0..<500))
        #expect(simulation.recovered.isEmpty && simulation.buffer.statistics.framesConcealed == 0)
        // Concealment only once the talker stopped, until the buffer went idle (300 ms).
        #expect(simulation.concealed == 14 && simulation.buffer.statistics.framesConcealedEmpty == 14)
        #expect(simulation.buffer.targetDelay == .milliseconds(40))
        // Waited in the buffer: the target, give or take the pull phase.
        #expect(simulation.latencies.allSatisfy { $0 >= .milliseconds(20) && $0 <= .milliseconds(60) }, "\(simulation.latencies.prefix(10))")
        let statistics = simulation.buffer.statistics
        #expect(statistics.framesDropped == 0 && statistics.framesInserted == 0 && statistics.underruns == 1)
        #expect(statistics.talkspurts == 1)
        // After the talker stopped: idle again, silence.
        #expect(!simulation.buffer.isPlaying)
    }

    @Test func lostPacketsComeBackFromTheNextPacketsFEC() {
        var simulation = TalkSimulation(seed: 7, link: TalkSimulation.Link(lossPercent: 5))
        simulation.run(packets: 1000, seconds: 21)
        let lost = simulation.lost.filter { $0 > 0 && $0 < 999 }
        #expect(lost.count >= 30 && lost.count <= 80, "seeded loss: \(lost.count)")
        // Every packet that came was played, in order; each lost one was recovered from FEC (when
        // the next one came) or concealed.
        #expect(simulation.played == (0..<1000).filter { !simulation.lost.contains($0) })
        let recoverable = lost.filter { !simulation.lost.contains($0 + 1) }
        #expect(Set(simulation.recovered) == Set(recoverable))
        let statistics = simulation.buffer.statistics
        #expect(statistics.framesRecoveredByFEC + statistics.framesConcealed == lost.count,
                "recovered \(statistics.framesRecoveredByFEC), concealed \(statistics.framesConcealed), lost \(lost.count)")
        #expect(simulation.buffer.statistics.framesDropped == 0)
    }

    @Test func jitterWithReorderingRaisesTheTargetAndLosesAlmostNothing() {
        // 0–60 ms of extra delay per packet: packets overtake each other up to three deep.
        var link = TalkSimulation.Link()
        link.jitter = { _ in .milliseconds(60) }
        var simulation = TalkSimulation(seed: 42, link: link)
        simulation.run(packets: 1000, seconds: 21)
        let settled = simulation.targets.filter { $0.0 > .seconds(5) && $0.0 < .seconds(19) }.map(\.1)
        #expect(settled.allSatisfy { $0 >= .milliseconds(70) && $0 <= .milliseconds(80) }, "\(settled.min()!)...\(settled.max()!)")
        // In order, and at most a few late packets lost to the start, before the jitter was known.
        #expect(simulation.played == simulation.played.sorted())
        #expect(Set(simulation.played).count == simulation.played.count)
        let late = simulation.buffer.statistics.late
        #expect(simulation.played.count >= 990 - late && late <= 10, "played \(simulation.played.count), late \(late)")
        #expect(simulation.buffer.statistics.resynchronisations == 0)
    }

    @Test func theTargetGrowsOnAJitterBurstAndShrinksBackAfter() {
        // Calm for 5 s, 0–120 ms of jitter for 5 s, calm again for 10 s.
        var link = TalkSimulation.Link()
        link.jitter = { time in time >= .seconds(5) && time < .seconds(10) ? .milliseconds(120) : .zero }
        var simulation = TalkSimulation(seed: 3, link: link)
        simulation.run(packets: 1000, seconds: 21)
        func targets(_ range: Range<Int>) -> [Duration] {
            simulation.targets.filter { $0.0 >= .seconds(Int64(range.lowerBound)) && $0.0 < .seconds(Int64(range.upperBound)) }.map(\.1)
        }
        func levels(_ range: Range<Int>) -> [Duration] {
            simulation.levels.filter { $0.0 >= .seconds(Int64(range.lowerBound)) && $0.0 < .seconds(Int64(range.upperBound)) }.map(\.1)
        }
        #expect(targets(1..<5).allSatisfy { $0 == .milliseconds(40) })
        #expect(targets(7..<10).allSatisfy { $0 >= .milliseconds(120) }, "\(targets(7..<10).min()!)")
        #expect(targets(16..<20).allSatisfy { $0 == .milliseconds(40) }, "\(targets(16..<20).max()!)")
        // The level followed: up during the burst, back down to about the target by the end.
        let burstLevel = levels(8..<10).max()!
        #expect(burstLevel >= .milliseconds(100), "\(burstLevel)")
        let endLevel = levels(18..<20).max()!
        #expect(endLevel <= .milliseconds(80), "level at the end \(endLevel)")
        #expect(simulation.buffer.statistics.framesDropped >= 2 && simulation.buffer.statistics.framesInserted >= 1)
        #expect(simulation.played == simulation.played.sorted())
        // Nothing is lost on the link: what was not played was concealed only around the burst.
        #expect(simulation.played.count >= 970, "\(simulation.played.count)")
    }

    @Test func aNewTalkspurtAfterAPauseStartsOverAndTimestampsWrap() {
        var buffer = AdaptiveJitterBuffer()
        var now = MonotonicTime(seconds: 100)
        var played: [Int] = []
        var timestamp = UInt32.max - 960 * 10  // wraps during the first spurt
        func step(_ send: Bool, _ id: Int) {
            if send {
                buffer.insert(ssrc: 9, timestamp: timestamp, samples: 960, payload: TalkSimulation.payload(id), arrival: now)
                timestamp &+= 960
            }
            if case let .audio(payload) = buffer.nextFrame(now: now).frame { played.append(TalkSimulation.id(payload)) }
            now = now + .milliseconds(20)
        }
        for id in 0..<50 { step(true, id) }
        for _ in 0..<50 { step(false, 0) }          // the talker lets go: 1 s of nothing
        #expect(!buffer.isPlaying)
        timestamp &+= 48_000 * 30                   // the sender's clock ran on meanwhile
        for id in 100..<150 { step(true, id) }
        #expect(played == Array(0..<50) + Array(100..<149))
        #expect(buffer.statistics.talkspurts == 2 && buffer.statistics.resynchronisations == 1)
        // A duplicate and a packet without a duration.
        #expect(buffer.insert(ssrc: 9, timestamp: timestamp &- 960, samples: 960, payload: [1, 2], arrival: now) == .duplicate)
        #expect(buffer.insert(ssrc: 9, timestamp: timestamp, samples: 0, payload: [1], arrival: now) == .refused)
    }

    @Test func aFloodIsBoundedAndANewSSRCStartsOver() {
        var buffer = AdaptiveJitterBuffer()
        let now = MonotonicTime(seconds: 5)
        for index in 0..<500 {
            buffer.insert(ssrc: 1, timestamp: UInt32(index * 960), samples: 960, payload: [0, 0], arrival: now)
        }
        #expect(buffer.bufferedDelay == .milliseconds(2000))  // 100 packets held, not 500
        _ = buffer.nextFrame(now: now)
        #expect(buffer.isPlaying)
        // Starting with a backlog, the oldest beyond the target are skipped: latency stays low.
        #expect(buffer.bufferedDelay <= buffer.targetDelay, "\(buffer.bufferedDelay)")
        buffer.insert(ssrc: 2, timestamp: 7, samples: 960, payload: [0, 1], arrival: now)
        #expect(!buffer.isPlaying && buffer.bufferedDelay == .milliseconds(20))
    }
}

@Suite("Talk floor, half-duplex gate, volume, resampler")
struct TalkControlTests {
    @Test func oneTalkerAtATimeWithALease() {
        var floor = TalkFloor<String>(lease: .seconds(5))
        let t0 = MonotonicTime(seconds: 1)
        let first = floor.claim("a", now: t0)
        let second = floor.claim("b", now: t0 + .seconds(1))
        let renewed = floor.claim("a", now: t0 + .seconds(1))     // renewing is fine
        let audioA = floor.admitAudio(from: "a", now: t0 + .seconds(4))   // audio renews to t0 + 9 s
        let audioB = floor.admitAudio(from: "b", now: t0 + .seconds(4))
        let stillBusy = floor.claim("b", now: t0 + .seconds(8))
        let afterLease = floor.claim("b", now: t0 + .seconds(10))  // a went silent: lease over
        #expect(first == .granted && second == .busy && renewed == .granted)
        #expect(audioA && !audioB)
        #expect(stillBusy == .busy && afterLease == .granted)
        let releasedA = floor.release("a")
        let releasedB = floor.release("b")
        #expect(!releasedA && releasedB)
        #expect(floor.holder(at: t0 + .seconds(10)) == nil)
    }

    @Test func theMicrophoneIsMutedWhilePlayingAnd200MillisecondsAfter() {
        var gate = HalfDuplexGate()
        let t = MonotonicTime(seconds: 3)
        #expect(!gate.mutes(capturedAt: t))
        gate.talkbackPlays(until: t + .milliseconds(40))
        #expect(gate.mutes(capturedAt: t))
        #expect(gate.mutes(capturedAt: t + .milliseconds(239)))
        #expect(!gate.mutes(capturedAt: t + .milliseconds(240)))
        gate.talkbackPlays(until: t)  // earlier than what is already muted: no change
        #expect(gate.mutedUntil == t + .milliseconds(240))
    }

    @Test func volumeTaper() {
        #expect(SpeakerVolume(percent: 100).gain == 1)
        #expect(SpeakerVolume(percent: 0).gain == 0)
        #expect(abs(SpeakerVolume(percent: 50).gain - 0.1) < 0.001)
        var samples: [Int16] = [1000, -32768, 32767]
        SpeakerVolume(percent: 50).apply(to: &samples)
        #expect(samples == [100, -3277, 3277])
    }

    /// A 1 kHz sine converted from 48 kHz to `rate` keeps its frequency and level, across chunks.
    @Test(arguments: [44_100, 32_000, 16_000, 96_000])
    func resamplingKeepsPitchAndLevel(rate: Int) {
        var resampler = Resampler(inputRate: 48_000, outputRate: rate)
        var output: [Int16] = []
        for chunk in 0..<50 {  // 1 s in 20 ms chunks
            let input = (0..<960).map { index -> Int16 in
                let n = Double(chunk * 960 + index)
                return Int16((Resampler.sine(2 * Double.pi * 1000 * n / 48_000) * 10_000).rounded())
            }
            output += resampler.process(input)
        }
        #expect(abs(output.count - rate) <= 40, "\(output.count) samples for 1 s at \(rate)")
        // Level (RMS of the steady part) and frequency (zero crossings per second).
        let steady = Array(output[(rate / 10)..<(rate * 9 / 10)])
        let rms = (steady.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(steady.count)).squareRoot()
        #expect(abs(rms - 10_000 / 2.0.squareRoot()) < 150, "RMS \(rms)")
        var crossings = 0
        for index in 1..<steady.count where (steady[index - 1] < 0) != (steady[index] < 0) { crossings += 1 }
        let frequency = Double(crossings) / 2 / (Double(steady.count) / Double(rate))
        #expect(abs(frequency - 1000) < 5, "\(frequency) Hz")
    }

    @Test func downsamplingRemovesWhatTheNewRateCannotCarry() {
        // 12 kHz is above 8 kHz's Nyquist frequency: it must not fold back as a 4 kHz tone.
        var resampler = Resampler(inputRate: 48_000, outputRate: 16_000)
        let input = (0..<48_000).map { Int16((Resampler.sine(2 * Double.pi * 12_000 * Double($0) / 48_000) * 10_000).rounded()) }
        let output = resampler.process(input)
        let rms = (output[1000...].reduce(0.0) { $0 + Double($1) * Double($1) } / Double(output.count - 1000)).squareRoot()
        #expect(rms < 100, "aliased RMS \(rms)")
    }
}

@Suite("Full duplex: the far-end reference and speexdsp's echo canceller")
struct EchoCancellationTests {
    @Test func theReferenceIsWhatPlayedAtTheCaptureTimeLessTheLead() {
        var reference = FarEndReference(sampleRate: 48_000, seconds: 1, lead: .milliseconds(10))
        let t0 = MonotonicTime(seconds: 50)
        for frame in 0..<10 {
            reference.played((0..<960).map { Int16(frame * 960 + $0 + 1) }, at: t0 + .milliseconds(Int64(20 * frame)))
        }
        // Captured 50 ms after t0: the samples played from 40 ms on (sample 1920 is the 1921st).
        let got = reference.reference(capturedAt: t0 + .milliseconds(50), count: 4)
        #expect(got == [1921, 1922, 1923, 1924])
        // Before anything played, and after the end: silence.
        #expect(reference.reference(capturedAt: t0, count: 3) == [0, 0, 0])
        #expect(reference.reference(capturedAt: t0 + .seconds(1), count: 2) == [0, 0])
        #expect(reference.hasAudio(capturedAt: t0 + .milliseconds(100), span: 960))
        // A pause of 100 ms is kept as silence; a jump of seconds starts over.
        reference.played([7, 7], at: t0 + .milliseconds(300))
        #expect(reference.reference(capturedAt: t0 + .milliseconds(310), count: 2) == [7, 7])
        #expect(reference.reference(capturedAt: t0 + .milliseconds(260), count: 2) == [0, 0])
        reference.played([9], at: t0 + .seconds(30))
        #expect(reference.reference(capturedAt: t0 + .seconds(30) + .milliseconds(10), count: 2) == [9, 0])
    }

    /// A microphone that hears the speaker 35 ms late at half its level (a simulated echo path): after
    /// two seconds of speech-like noise the canceller takes at least 20 dB of it out.
    @Test func speexdspCancelsASimulatedEcho() throws {
        let canceller = try #require(SpeexEchoCanceller(frameSize: 960, sampleRate: 48_000, filterMilliseconds: 200))
        var random = SeededRandom(seed: 5)
        var far: [Int16] = []
        var inputPower = 0.0, outputPower = 0.0
        let delay = 48 * 35
        for frame in 0..<200 {   // 4 s
            // Noise shaped into bursts (an envelope at 3 Hz): broadband, like speech.
            let block = (0..<960).map { index -> Int16 in
                let n = frame * 960 + index
                let envelope = 0.3 + 0.7 * abs(Resampler.sine(2 * Double.pi * 3 * Double(n) / 48_000))
                let noise = Double(Int64(random.next() % 20_001) - 10_000)
                return Int16(noise * envelope)
            }
            far += block
            let microphone = (0..<960).map { index -> Int16 in
                let source = frame * 960 + index - delay
                return source >= 0 ? far[source] / 2 : 0
            }
            let output = canceller.process(microphone: microphone, reference: block)
            if frame >= 100 {
                inputPower += microphone.reduce(0.0) { $0 + Double($1) * Double($1) }
                outputPower += output.reduce(0.0) { $0 + Double($1) * Double($1) }
            }
        }
        let erle = 10 * (inputPower / max(outputPower, 1)).log10
        #expect(erle >= 20, "ERLE \(erle) dB")
    }
}

extension Double {
    /// log10 without Foundation (tests only): by the natural logarithm's series around 1.
    var log10: Double {
        var value = self, exponent = 0.0
        while value > 10 { value /= 10; exponent += 1 }
        while value < 1 { value *= 10; exponent -= 1 }
        let y = (value - 1) / (value + 1)
        var term = y, sum = 0.0
        for n in stride(from: 1, through: 99, by: 2) {
            sum += term / Double(n)
            term *= y * y
        }
        return exponent + 2 * sum / 2.302585092994046
    }
}
