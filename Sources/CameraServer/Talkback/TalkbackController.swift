import ALSA
import Logging
import NIOConcurrencyHelpers
import Opus
import RTCBase
import SystemSupport
import Talkback
import WebRTCSession

/// Talkback (issue 17): the viewer holding the talk floor is played on the camera's speaker.
///
/// The event loop hands in the talker's Opus packets (`receive`, from the hub) and the page's
/// claims (`claim`/`release`, from the router); the jitter buffer and the floor live under this
/// object's lock. The "rtcam-talk" thread asks the buffer for a frame whenever the speaker has
/// room (blocking ALSA writes pace it), decodes it (Opus PLC and in-band FEC), applies the volume,
/// converts the rate when the device needs another, and writes it. It opens the speaker when a
/// talkspurt starts and closes it after a second of silence, so an idle camera holds no PCM.
final class TalkbackController: @unchecked Sendable {
    enum ClaimResult: Equatable {
        case granted
        case busy
        case noSpeaker
    }

    struct Status: Sendable {
        var speaker: String?
        var talker: String?
        var volumePercent: Int
        var whoMayTalk: TalkPermission
        var jitter: JitterBufferStatistics
        var targetDelayMilliseconds: Double
        var packetsWithoutFloor: Int
        var playback: ALSAPlaybackStatistics
        var deviceRate: Int?
        var openFailures: Int
        var microphonePeriodsMuted: Int
        var echo: MicrophoneGate.Counters
    }

    private let logger: Logger
    private let gate: MicrophoneGate
    private let lock = NIOLock()
    /// Wakes the player when packets come (value: packets waiting since it last looked).
    private let wake = ConditionLock(value: 0)
    private var floor = TalkFloor<String>()
    /// At least 60 ms (the sans-IO default is 40): on this 2-core test machine at load 7–8 the
    /// talker's packets reached the event loop after stalls of up to 110 ms, and 40 ms let such a
    /// stall through as a 75 ms gap; 60 ms keeps it to concealment the ear does not notice.
    private var jitter = AdaptiveJitterBuffer(configuration: TalkbackController.jitterConfiguration)

    static var jitterConfiguration: JitterBufferConfiguration {
        var configuration = JitterBufferConfiguration()
        configuration.minimumTarget = .milliseconds(60)
        return configuration
    }
    private var settings = TalkbackSettings()
    /// The ALSA PCM talkback plays on (nil: no speaker).
    private var device: String?
    private var packetsWithoutFloor = 0
    private var playbackStatistics = ALSAPlaybackStatistics()
    private var deviceRate: Int?
    private var openFailures = 0
    private var openFailureLogged = false
    private var running = true
    /// `start` was called: the thread runs whenever there is a speaker.
    private var started = false
    /// Set (under the lock) by whoever starts the thread: it is started once.
    private var threadStarted = false
    private var thread: DedicatedThread?
    /// Test hook (RTCAM_TALKBACK_TEST_LOSS=N): drop N % of the talker's packets before the buffer.
    private let testLossPercent: Int
    private var lossRandom = SeededRandom(seed: 17)

    init(settings: TalkbackSettings, logger: Logger, gate: MicrophoneGate = .shared,
         speakers: () -> [DeviceListing.Speaker] = { DeviceListing.speakers() }) {
        self.logger = logger
        self.gate = gate
        testLossPercent = Environment.value("RTCAM_TALKBACK_TEST_LOSS").flatMap { Int($0) }.map { max(0, min(100, $0)) } ?? 0
        apply(settings, speakers: speakers)
    }

    /// New settings (speaker, volume, who may talk): take effect with the next frame; a new speaker
    /// with the next talkspurt.
    func apply(_ new: TalkbackSettings, speakers: () -> [DeviceListing.Speaker] = { DeviceListing.speakers() }) {
        let resolved: String?
        switch new.speaker {
        case .none: resolved = nil
        case let .alsa(name): resolved = name
        case .automatic:
            resolved = speakers().first.map { String($0.source.dropFirst("alsa:".count)) }
        }
        let startNow: Bool = lock.withLock {
            settings = new
            device = resolved
            guard started, !threadStarted, resolved != nil, running else { return false }
            threadStarted = true
            return true
        }
        gate.setHandling(new.echo)
        if startNow { startThread() }
        logger.info("talkback: \(resolved.map { "speaker \($0)" } ?? "no speaker")\(new.speaker == .automatic ? " (auto)" : ""), volume \(new.volumePercent) %, \(new.whoMayTalk == .owner ? "only the owner" : "every viewer") may talk, echo: \(new.echo.rawValue)")
    }

    var hasSpeaker: Bool { lock.withLock { device != nil } }
    var whoMayTalk: TalkPermission { lock.withLock { settings.whoMayTalk } }

    /// Starts the player thread now if there is a speaker, else when one is configured (a camera
    /// without a speaker has no thread for it).
    func start() {
        let startNow: Bool = lock.withLock {
            started = true
            guard device != nil, !threadStarted else { return false }
            threadStarted = true
            return true
        }
        if startNow { startThread() }
    }

    private func startThread() {
        let made = DedicatedThread.start(name: "rtcam-talk") { [self] in run() }
        lock.withLock { thread = made }
    }

    func stop() {
        let joining: DedicatedThread? = lock.withLock {
            running = false
            defer { thread = nil }
            return thread
        }
        wake.lock()
        wake.unlock(withValue: 1)
        joining?.join(timeout: .seconds(3))
    }

    // MARK: - The floor (router, event loop)

    func claim(viewer: String, now: MonotonicTime) -> ClaimResult {
        lock.withLock {
            guard device != nil else { return .noSpeaker }
            let previous = floor.holder(at: now)
            switch floor.claim(viewer, now: now) {
            case .granted:
                if previous != viewer {
                    jitter.reset()
                    logger.info("talkback: viewer \(viewer) talks")
                }
                return .granted
            case .busy:
                return .busy
            }
        }
    }

    @discardableResult
    func release(viewer: String) -> Bool {
        lock.withLock {
            guard floor.release(viewer) else { return false }
            logger.info("talkback: viewer \(viewer) stopped talking")
            return true
        }
    }

    /// The viewer's session ended: it no longer holds the floor.
    func viewerLeft(_ viewer: String) {
        release(viewer: viewer)
    }

    func talker(now: MonotonicTime) -> String? { lock.withLock { floor.holder(at: now) } }

    // MARK: - Packets (hub, event loop)

    func receive(_ packet: ReceivedAudioPacket, from viewer: String) {
        let accepted: Bool = lock.withLock {
            guard device != nil, floor.admitAudio(from: viewer, now: packet.arrival) else {
                packetsWithoutFloor += 1
                return false
            }
            if testLossPercent > 0, Int(lossRandom.next() % 100) < testLossPercent { return false }
            guard let samples = OpusDecoder.sampleCount(ofPacket: packet.payload) else { return false }
            jitter.insert(ssrc: packet.ssrc, timestamp: packet.timestamp, samples: samples, payload: packet.payload,
                          arrival: packet.arrival)
            return true
        }
        guard accepted else { return }
        wake.lock()
        wake.unlock(withValue: 1)
    }

    func status() -> Status {
        let now = MonotonicClock.now()
        return lock.withLock {
            Status(speaker: device, talker: floor.holder(at: now), volumePercent: settings.volumePercent,
                   whoMayTalk: settings.whoMayTalk, jitter: jitter.statistics,
                   targetDelayMilliseconds: jitter.targetDelay.millisecondsDouble, packetsWithoutFloor: packetsWithoutFloor,
                   playback: playbackStatistics, deviceRate: deviceRate, openFailures: openFailures,
                   microphonePeriodsMuted: gate.mutedPeriodCount, echo: gate.counters)
        }
    }

    // MARK: - The player thread

    private var isRunning: Bool { lock.withLock { running } }

    private func run() {
        // A late write is a gap the listener hears: the player asks for a real-time priority (it
        // blocks on the device, and never writes ahead of it: see `playTalkspurts`).
        let refused = DedicatedThread.requestRealtimePriority(10)
        if refused == 0 {
            logger.debug("talkback: the player thread runs SCHED_FIFO 10")
        } else {
            logger.notice("talkback: no real-time priority for the player thread (errno \(refused)); under load it may be late")
        }
        while isRunning {
            // Idle: wait for the talker's first packets (or stop).
            wake.lock()
            wake.unlock(withValue: 0)
            guard wake.lock(whenValue: 1, timeoutSeconds: 1) else { continue }
            wake.unlock(withValue: 0)
            guard isRunning, let name = lock.withLock({ device }) else { continue }
            let speaker: SpeakerOutput
            do {
                speaker = try SpeakerOutput(device: name)
            } catch {
                // Said once at error level (a talker keeps trying every second), then at debug.
                let first: Bool = lock.withLock {
                    openFailures += 1
                    defer { openFailureLogged = true }
                    return !openFailureLogged
                }
                if first {
                    logger.error("talkback: cannot open speaker \(name): \(error)")
                } else {
                    logger.debug("talkback: cannot open speaker \(name): \(error)")
                }
                MonotonicClock.sleep(until: MonotonicClock.now() + .seconds(1))
                continue
            }
            lock.withLock {
                deviceRate = speaker.rate
                openFailureLogged = false
            }
            logger.debug("talkback: speaker \(name) open at \(speaker.rate) Hz, \(speaker.channels) channel(s)")
            playTalkspurts(on: speaker)
            speaker.close()
            lock.withLock { playbackStatistics = speaker.playbackStatistics }
        }
    }

    /// Plays until a second of silence with no talker (or stop, or a device error).
    private func playTalkspurts(on speaker: SpeakerOutput) {
        let decoder: OpusDecoder
        do {
            decoder = try OpusDecoder(channels: 1)
        } catch {
            logger.error("talkback: Opus decoder: \(error)")
            return
        }
        var silentSince: MonotonicTime?
        var previousWasAudio = false
        // Pacing guard: a device that takes samples faster than real time (alsa-lib's `null` and
        // `file` plugins are not paced) must not drain the jitter buffer, nor let this real-time
        // thread spin. What was written may run ahead of the clock by the device's buffer and half
        // a second (room for a sound card whose clock runs a little fast: 100 ppm is 5000 s of talk).
        let started = MonotonicClock.now()
        var samplesWritten: Int64 = 0
        while true {
            let due = started + .nanoseconds(samplesWritten * 1_000_000_000 / 48_000) - speaker.bufferDuration
                - .milliseconds(500)
            if MonotonicClock.now() < due { MonotonicClock.sleep(until: due) }
            let now = MonotonicClock.now()
            let (output, volume, running, talker) = lock.withLock {
                (jitter.nextFrame(now: now), settings.volumePercent, self.running, floor.holder(at: now))
            }
            guard running else { return }
            var pcm: [Int16]
            var audible = true
            do {
                switch output.frame {
                case let .audio(packet):
                    pcm = try decoder.decode(packet)
                case let .recovered(next):
                    pcm = try decoder.decode(next, useFEC: true, lostSamplesPerChannel: output.samples)
                case .concealed:
                    pcm = previousWasAudio ? try decoder.decode(nil, lostSamplesPerChannel: output.samples)
                                           : [Int16](repeating: 0, count: output.samples)
                case .silence:
                    pcm = [Int16](repeating: 0, count: output.samples)
                    audible = false
                }
            } catch {
                // A packet libopus refuses: conceal it rather than stop.
                pcm = (try? decoder.decode(nil, lostSamplesPerChannel: output.samples)) ?? [Int16](repeating: 0, count: output.samples)
            }
            if case .silence = output.frame { previousWasAudio = false } else { previousWasAudio = true }
            if audible {
                silentSince = nil
            } else if silentSince == nil {
                silentSince = now
            }
            if let silentSince, talker == nil, now - silentSince >= .seconds(1) { return }
            SpeakerVolume(percent: volume).apply(to: &pcm)
            samplesWritten += Int64(output.samples)
            do {
                try speaker.write(pcm)
            } catch {
                logger.error("talkback: speaker failed: \(error)")
                return
            }
            if audible {
                // After a blocking write the ring is about full: this frame is heard once the rest
                // of the ring has played.
                let written = MonotonicClock.now()
                let frame = Duration.nanoseconds(Int64(output.samples) * 1_000_000_000 / 48_000)
                gate.talkbackPlayed(pcm, at: written + speaker.bufferDuration - frame, audibleUntil: written + speaker.bufferDuration)
            }
            lock.withLock { playbackStatistics = speaker.playbackStatistics }
        }
    }
}

/// The speaker's ALSA PCM at the first rate and channel count it takes (48 kHz mono preferred;
/// the plug layer usually takes anything), with the resampler for any other rate. Written in
/// 20 ms frames; starts after a prefill of silence so that from the first frame on the device's
/// clock paces the writer.
final class SpeakerOutput {
    let rate: Int
    let channels: Int
    let bufferDuration: Duration
    private let playback: ALSAPlayback
    private var resampler: Resampler

    static let rates: [UInt32] = [48_000, 44_100, 32_000, 16_000, 8_000]

    init(device: String) throws(ALSAError) {
        let opened = try Self.open(device)
        playback = opened
        rate = Int(opened.sampleRate)
        channels = Int(opened.channels)
        bufferDuration = .milliseconds(Int64(opened.bufferFrames) * 1000 / Int64(max(1, opened.sampleRate)))
        resampler = Resampler(inputRate: 48_000, outputRate: Int(opened.sampleRate))
        // Prefill: all but 20 ms of the ring, so the first frame starts the device.
        let prefill = max(0, opened.bufferFrames - Int(opened.sampleRate) / 50)
        try opened.write([Int16](repeating: 0, count: prefill * Int(opened.channels)))
    }

    private static func open(_ device: String) throws(ALSAError) -> ALSAPlayback {
        var lastError: ALSAError = .closed
        for rate in rates {
            for channels in [UInt32(1), 2] {
                do {
                    return try ALSAPlayback(configuration: ALSAPlaybackConfiguration(
                        device: device, sampleRate: rate, channels: channels, periodMilliseconds: 10, periodsPerBuffer: 8))
                } catch {
                    lastError = error
                }
            }
        }
        throw lastError
    }

    var playbackStatistics: ALSAPlaybackStatistics { playback.statistics }

    /// Mono 48 kHz samples: converted to the device's rate and channels, then written (blocks).
    func write(_ samples: [Int16]) throws(ALSAError) {
        var converted = resampler.process(samples)
        if channels == 2 {
            var stereo = [Int16](repeating: 0, count: converted.count * 2)
            for index in converted.indices {
                stereo[2 * index] = converted[index]
                stereo[2 * index + 1] = converted[index]
            }
            converted = stereo
        }
        try playback.write(converted)
    }

    func close() { playback.close() }
}
