internal import CALSA
import Glibc
import RTCBase

/// Every failure of the ALSA target; `code` is the negative errno alsa-lib returned, `message` its
/// snd_strerror text.
public enum ALSAError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The configuration asks for something this capture does not do (channels, period, rate).
    case invalidConfiguration(String)
    case open(device: String, code: Int32, message: String)
    /// The PCM definition text (ALSA configuration syntax) did not parse.
    case configuration(code: Int32, message: String)
    /// A hardware/software parameter the device refused (`step` names the snd_pcm_* call).
    case parameters(step: String, code: Int32, message: String)
    /// Reading failed with an error that is not an xrun, a suspend or an interruption (device
    /// unplugged: -ENODEV; sound server gone: -EIO/-ENOTCONN…). Close and reopen.
    case read(code: Int32, message: String)
    /// Writing (`ALSAPlayback`) failed with an error that is not an underrun, a suspend or an
    /// interruption. Close and reopen.
    case write(code: Int32, message: String)
    /// snd_pcm_recover (or the restart after it) could not bring the stream back.
    case recoveryFailed(code: Int32, message: String)
    case closed

    public var description: String {
        switch self {
        case let .invalidConfiguration(reason): return "invalid ALSA capture configuration: \(reason)"
        case let .open(device, code, message): return "opening PCM \(device) failed: \(message) (\(code))"
        case let .configuration(code, message): return "PCM definition invalid: \(message) (\(code))"
        case let .parameters(step, code, message): return "\(step) failed: \(message) (\(code))"
        case let .read(code, message): return "read failed: \(message) (\(code))"
        case let .write(code, message): return "write failed: \(message) (\(code))"
        case let .recoveryFailed(code, message): return "xrun/suspend recovery failed: \(message) (\(code))"
        case .closed: return "PCM closed"
        }
    }
}

public struct ALSACaptureConfiguration: Equatable, Sendable {
    /// A PCM name: "default", "plughw:1,0" (the plug layer converts rate, format and channels when
    /// the card differs), or one defined in `pcmDefinition`.
    public var device: String
    /// Optional ALSA configuration text defining `device` (e.g. `pcm.mic { type pulse; device "x" }`).
    /// When set, only this text is used as configuration (snd_pcm_open_lconf): nothing global is read
    /// or changed.
    public var pcmDefinition: String?
    /// Exact: the device (or its plug layer) must deliver this rate. 8000…192000.
    public var sampleRate: UInt32
    /// 1 or 2 (interleaved).
    public var channels: UInt32
    /// 10…20 ms periods: one `readPeriod()` returns one period.
    public var periodMilliseconds: UInt32
    /// The ring buffer holds this many periods (2…8): a reader later than that loses audio.
    public var periodsPerBuffer: UInt32

    public init(device: String = "default", pcmDefinition: String? = nil, sampleRate: UInt32 = 48_000, channels: UInt32 = 1,
                periodMilliseconds: UInt32 = 10, periodsPerBuffer: UInt32 = 4) {
        self.device = device; self.pcmDefinition = pcmDefinition; self.sampleRate = sampleRate
        self.channels = channels; self.periodMilliseconds = periodMilliseconds; self.periodsPerBuffer = periodsPerBuffer
    }

    func validate() throws(ALSAError) {
        try validateALSAStream(sampleRate: sampleRate, channels: channels, periodMilliseconds: periodMilliseconds,
                               periodsPerBuffer: periodsPerBuffer, periodLimits: 10...20, bufferLimits: 2...8)
    }
}

/// The checks capture and playback share; the period and ring-buffer limits are each direction's.
func validateALSAStream(sampleRate: UInt32, channels: UInt32, periodMilliseconds: UInt32, periodsPerBuffer: UInt32,
                        periodLimits: ClosedRange<UInt32>, bufferLimits: ClosedRange<UInt32>) throws(ALSAError) {
    guard (1...2).contains(channels) else { throw .invalidConfiguration("channels \(channels), not 1 or 2") }
    guard (8_000...192_000).contains(sampleRate) else { throw .invalidConfiguration("sample rate \(sampleRate) Hz") }
    guard periodLimits.contains(periodMilliseconds) else {
        throw .invalidConfiguration("period \(periodMilliseconds) ms, not \(periodLimits.lowerBound)…\(periodLimits.upperBound) ms")
    }
    guard bufferLimits.contains(periodsPerBuffer) else {
        throw .invalidConfiguration("\(periodsPerBuffer) periods per buffer, not \(bufferLimits.lowerBound)…\(bufferLimits.upperBound)")
    }
}

/// One period of interleaved S16 samples.
public struct ALSAAudioChunk: Equatable, Sendable {
    /// Interleaved, `frameCount * channels` samples.
    public var samples: [Int16]
    public var frameCount: Int
    public var channels: Int
    /// CLOCK_MONOTONIC time the first frame was captured (the base of V4L2 timestamps too), on the
    /// sample clock: consecutive chunks are exactly `frameCount / rate` apart, except where the
    /// timeline slews a frame or a discontinuity re-anchors it (`CaptureTimeline`).
    public var captureTime: MonotonicTime
    /// Position of the first frame on the stream's sample clock (0 = first frame delivered). It
    /// advances by `frameCount` per chunk and jumps over the frames lost in a discontinuity, so RTP
    /// timestamps derived from it follow real time.
    public var firstFrameIndex: UInt64
    /// Frames were lost just before this chunk (an xrun or suspend was recovered, or a sound server's
    /// backlog was skipped).
    public var followsDiscontinuity: Bool
}

public struct ALSACaptureStatistics: Equatable, Sendable {
    /// Chunks delivered by `readPeriod()`.
    public var reads = 0
    /// Frames delivered.
    public var framesRead: UInt64 = 0
    /// -EPIPE (overrun: the reader was later than the buffer) recovered with snd_pcm_recover.
    public var xrunsRecovered = 0
    /// -ESTRPIPE (system suspend) recovered with snd_pcm_recover.
    public var suspendsRecovered = 0
    /// -EINTR (a signal interrupted the wait) retried.
    public var interruptions = 0
    /// snd_pcm_start after a recovery left the stream prepared.
    public var restarts = 0
    /// A sound server (the `pulse` PCM) kept buffering behind a reader stalled longer than
    /// `ALSACapture.backlogLimit`, or after a stall of its own, without an xrun: that stale audio was
    /// read and dropped until the audio read was fresh again.
    public var backlogsSkipped = 0
    /// Frames read and dropped in those backlogs.
    public var framesSkipped: UInt64 = 0
    /// Frames lost in all discontinuities: the skipped ones, and after an xrun or suspend the ones
    /// estimated from the time that passed (see `ALSAAudioChunk.firstFrameIndex`).
    public var framesLost: UInt64 = 0
    /// The capture times were moved in one step (more than `CaptureTimeline.jumpLimit`) to follow the
    /// device: a sound server's latency changed. Smaller drift is slewed, a frame per chunk.
    public var clockJumps = 0
    public init() {}

    /// Every discontinuity of any kind.
    public var recoveries: Int { xrunsRecovered + suspendsRecovered + backlogsSkipped }

    /// These counts and `other`'s added up (a reopened device's counts after the closed one's).
    public func adding(_ other: ALSACaptureStatistics) -> ALSACaptureStatistics {
        var sum = self
        sum.reads += other.reads
        sum.framesRead += other.framesRead
        sum.xrunsRecovered += other.xrunsRecovered
        sum.suspendsRecovered += other.suspendsRecovered
        sum.interruptions += other.interruptions
        sum.restarts += other.restarts
        sum.backlogsSkipped += other.backlogsSkipped
        sum.framesSkipped += other.framesSkipped
        sum.framesLost += other.framesLost
        sum.clockJumps += other.clockJumps
        return sum
    }

    /// Every count by a stable name, for a status report (`/api/status`).
    public var namedCounts: [(name: String, value: Int)] {
        [("reads", reads), ("framesRead", Int(clamping: framesRead)), ("xrunsRecovered", xrunsRecovered),
         ("suspendsRecovered", suspendsRecovered), ("interruptions", interruptions), ("restarts", restarts),
         ("backlogsSkipped", backlogsSkipped), ("framesSkipped", Int(clamping: framesSkipped)),
         ("framesLost", Int(clamping: framesLost)), ("clockJumps", clockJumps)]
    }
}

/// An ALSA capture PCM read in blocking mode, one period per call, on a thread of its own (never on
/// the network event loop): `readPeriod()` blocks about one period.
///
/// Blocking reads suit every PCM type, including the ioplug-based `pulse` PCM, whose poll descriptor
/// and revents translation defeated a non-blocking loop (alsa-lib 1.2.8 + alsa-plugins 1.2.7); its
/// blocking reads are paced and cheap (0.07 s CPU per 3 s of 10 ms reads, measured). Not
/// thread-safe: one thread reads and closes it (another thread must not call `close()` while a
/// read blocks; stop the audio thread between two periods).
public final class ALSACapture {
    public let configuration: ALSACaptureConfiguration
    /// What the device agreed to (rate and channels are exactly the configured ones).
    public private(set) var sampleRate: UInt32 = 0
    public private(set) var channels: UInt32 = 0
    public private(set) var periodFrames = 0
    public private(set) var bufferFrames = 0
    public private(set) var statistics = ALSACaptureStatistics()

    private var pcm: OpaquePointer?
    private var timeline: CaptureTimeline
    /// Frames were lost before the next chunk, how many is unknown (xrun, suspend, cut read).
    private var pendingDiscontinuity = false
    /// Frames were skipped before the next chunk (counted: the sample clock stays exact).
    private var skippedSinceLastChunk = false
    private var periodBuffer: [Int16] = []
    /// Sample position just after the last chunk delivered.
    private var lastEndPosition: UInt64 = 0

    /// Opens the PCM in blocking mode, negotiates S16_LE / rate / channels / period / buffer,
    /// prepares and starts capturing. Call `readPeriod()` within a buffer's time (the audio of a late
    /// first read is skipped or overruns).
    public init(configuration: ALSACaptureConfiguration) throws(ALSAError) {
        try configuration.validate()
        self.configuration = configuration
        timeline = CaptureTimeline(sampleRate: configuration.sampleRate)
        pcm = try Self.open(configuration)
        do {
            try negotiate()
            try checkALSA(snd_pcm_prepare(pcm), "snd_pcm_prepare")
            try checkALSA(snd_pcm_start(pcm), "snd_pcm_start")
        } catch {
            snd_pcm_close(pcm)
            pcm = nil
            throw error
        }
        periodBuffer = Array(repeating: 0, count: periodFrames * Int(channels))
    }

    deinit { close() }

    /// Stops capturing and releases the PCM; `readPeriod()` then throws `.closed`. Idempotent.
    public func close() {
        guard let pcm else { return }
        _ = snd_pcm_drop(pcm)
        snd_pcm_close(pcm)
        self.pcm = nil
    }

    public var isClosed: Bool { pcm == nil }

    // MARK: reading

    /// Audio older than this when read is a backlog and is dropped until reads are fresh again: the
    /// ring buffer's duration (a real device overruns there) or 200 ms, whichever is longer. A sound
    /// server keeps buffering behind a late reader (PulseAudio up to 4 MB) and never reports an xrun.
    public var backlogLimit: Duration {
        .nanoseconds(max(Int64(bufferFrames) * 1_000_000_000 / Int64(sampleRate), 200_000_000))
    }

    /// A backlog is dropped until a period is no older than this (two periods): fresh audio again.
    private var freshLimit: Duration { .nanoseconds(2 * Int64(periodFrames) * 1_000_000_000 / Int64(sampleRate)) }

    /// Blocks until the next period is captured and returns it (exactly `periodFrames` frames).
    /// Overruns, suspends, interruptions and sound-server backlogs are recovered (counted in
    /// `statistics`); the chunk after one has `followsDiscontinuity`. Throws only what a reopen must
    /// handle (`.read`, `.recoveryFailed`, `.closed`).
    ///
    /// How old a period is comes from the sample clock (`CaptureTimeline`), never from
    /// snd_pcm_delay or snd_pcm_avail: the `pulse` PCM's delay is a latency model (it said 31,000
    /// frames for the first 0.7 s of a stream whose periods came every 20 ms, then counted down a
    /// period per read) and its avail a fake ring pointer that creeps and wraps. Deciding from those
    /// dropped periods of a steady stream whenever the reader was a little late.
    public func readPeriod() throws(ALSAError) -> ALSAAudioChunk {
        guard let pcm else { throw .closed }
        let channelCount = Int(channels)
        // Failures that recovery "fixes" without audio flowing must not spin forever.
        var failures = 0
        func failed() throws(ALSAError) {
            failures += 1
            if failures > 100 { throw .recoveryFailed(code: -EIO, message: "no audio after 100 recoveries") }
        }
        var drainedPeriods = 0
        var draining = false
        let periodDuration = Duration.nanoseconds(Int64(periodFrames) * 1_000_000_000 / Int64(sampleRate))
        while true {
            let called = Self.now()
            let read = periodBuffer.withUnsafeMutableBufferPointer { buffer in
                snd_pcm_readi(pcm, buffer.baseAddress, snd_pcm_uframes_t(periodFrames))
            }
            let returned = Self.now()
            if read == snd_pcm_sframes_t(-EAGAIN) {  // not expected in blocking mode; retry
                try failed()
                continue
            }
            if read < 0 {
                try failed()
                try recover(Int32(read))
                continue
            }
            // In blocking mode a short read means an error cut the period: the next call reports it.
            // The partial period is dropped (the timeline counts it as lost).
            guard Int(read) == periodFrames else {
                try failed()
                if read > 0 { pendingDiscontinuity = true }
                continue
            }
            // A read that had to wait returned as its last frame arrived: its first frame was
            // captured a period earlier (plus the source's own latency, which the timeline's lower
            // envelope takes as it is). A read that found the period waiting says nothing of its age.
            let waited = returned - called >= periodDuration / 2
            let estimate = returned - periodDuration

            // Stale audio: a backlog the reader or the server left behind, read without waiting.
            // Drop it up to fresh audio; the dropped frames keep their place on the sample clock.
            // Bounded: after 1000 periods (10–20 s of audio) deliver whatever comes. A read that had
            // to wait brought audio that just arrived, however late the sample clock calls it (the
            // source lost time: the timeline follows it).
            if timeline.isStarted, !pendingDiscontinuity, drainedPeriods < 1_000 {
                let age = returned - timeline.time(at: timeline.endPosition + UInt64(periodFrames))
                if draining, waited, age > freshLimit {
                    // The backlog is read, yet the sample clock still calls this audio stale: audio
                    // was lost behind it (a plugin PCM whose ring overran without reporting an
                    // xrun). Deliver it after a discontinuity: re-anchor on it.
                    pendingDiscontinuity = true
                } else if !waited, age > (draining ? freshLimit : backlogLimit) {
                    if !draining { statistics.backlogsSkipped += 1 }
                    draining = true
                    drainedPeriods += 1
                    statistics.framesSkipped += UInt64(periodFrames)
                    timeline.skip(frames: periodFrames)
                    skippedSinceLastChunk = true
                    continue
                }
            }

            let afterDiscontinuity = pendingDiscontinuity && statistics.reads > 0
            let trusted = waited || afterDiscontinuity || !timeline.isStarted
            let jumpsBefore = timeline.jumps
            let placed = timeline.place(frames: periodFrames, estimate: trusted ? estimate : nil, afterDiscontinuity: afterDiscontinuity)
            statistics.clockJumps += timeline.jumps - jumpsBefore
            let followsDiscontinuity = afterDiscontinuity || skippedSinceLastChunk
            if followsDiscontinuity, placed.position > lastEndPosition {
                statistics.framesLost += placed.position - lastEndPosition
            }
            pendingDiscontinuity = false
            skippedSinceLastChunk = false
            lastEndPosition = placed.position + UInt64(periodFrames)
            statistics.reads += 1
            statistics.framesRead += UInt64(periodFrames)
            return ALSAAudioChunk(samples: Array(periodBuffer[0..<periodFrames * channelCount]), frameCount: periodFrames,
                                  channels: channelCount, captureTime: placed.captureTime, firstFrameIndex: placed.position,
                                  followsDiscontinuity: followsDiscontinuity)
        }
    }

    /// snd_pcm_recover for -EPIPE (overrun), -ESTRPIPE (suspend) and -EINTR, then restarts capture
    /// (after recovery the PCM is only prepared). Anything else is thrown.
    private func recover(_ code: Int32) throws(ALSAError) {
        guard let pcm else { throw .closed }
        guard code == -EPIPE || code == -ESTRPIPE || code == -EINTR else {
            throw .read(code: code, message: Self.message(code))
        }
        let result = snd_pcm_recover(pcm, code, 1)
        guard result >= 0 else { throw .recoveryFailed(code: result, message: Self.message(result)) }
        switch code {
        case -EPIPE: statistics.xrunsRecovered += 1; pendingDiscontinuity = true
        case -ESTRPIPE: statistics.suspendsRecovered += 1; pendingDiscontinuity = true
        default: statistics.interruptions += 1
        }
        if snd_pcm_state(pcm) == SND_PCM_STATE_PREPARED {
            let started = snd_pcm_start(pcm)
            guard started >= 0 else { throw .recoveryFailed(code: started, message: Self.message(started)) }
            statistics.restarts += 1
        }
    }

    // MARK: opening

    private static func open(_ configuration: ALSACaptureConfiguration) throws(ALSAError) -> OpaquePointer? {
        try openPCM(device: configuration.device, definition: configuration.pcmDefinition, stream: SND_PCM_STREAM_CAPTURE)
    }

    /// Opens PCM `device` in blocking mode, from the global configuration or, when `definition` is
    /// given, from that configuration text alone (snd_pcm_open_lconf).
    static func openPCM(device: String, definition: String?, stream: snd_pcm_stream_t) throws(ALSAError) -> OpaquePointer? {
        var handle: OpaquePointer?
        let blocking: Int32 = 0
        let result: Int32
        if let definition {
            var top: OpaquePointer?
            var code = snd_config_top(&top)
            guard code >= 0 else { throw .configuration(code: code, message: message(code)) }
            defer { snd_config_delete(top) }
            var input: OpaquePointer?
            code = definition.withCString { snd_input_buffer_open(&input, $0, strlen($0)) }
            guard code >= 0 else { throw .configuration(code: code, message: message(code)) }
            code = snd_config_load(top, input)
            snd_input_close(input)
            guard code >= 0 else { throw .configuration(code: code, message: message(code)) }
            result = snd_pcm_open_lconf(&handle, device, stream, blocking, top)
        } else {
            result = snd_pcm_open(&handle, device, stream, blocking)
        }
        guard result >= 0, handle != nil else {
            throw .open(device: device, code: result, message: message(result))
        }
        return handle
    }

    /// The shared hw params (`negotiateInterleavedS16`), at least two periods of ring, and the
    /// capture side's sw params.
    private func negotiate() throws(ALSAError) {
        let agreed = try negotiateInterleavedS16(pcm, sampleRate: configuration.sampleRate, channels: configuration.channels,
                                                 periodMilliseconds: configuration.periodMilliseconds,
                                                 periodsPerBuffer: configuration.periodsPerBuffer)
        let period = agreed.periodFrames, buffer = agreed.bufferFrames
        guard period > 0, buffer >= 2 * period else {
            throw .parameters(step: "period \(period) / buffer \(buffer) frames", code: -EINVAL, message: "buffer under two periods")
        }
        sampleRate = agreed.sampleRate
        channels = agreed.channels
        periodFrames = Int(period)
        bufferFrames = Int(buffer)

        var sw: OpaquePointer?
        try checkALSA(snd_pcm_sw_params_malloc(&sw), "snd_pcm_sw_params_malloc")
        defer { snd_pcm_sw_params_free(sw) }
        try checkALSA(snd_pcm_sw_params_current(pcm, sw), "snd_pcm_sw_params_current")
        // Wake a blocked read once a period is there; a read also starts a stream left prepared.
        try checkALSA(snd_pcm_sw_params_set_avail_min(pcm, sw, period), "snd_pcm_sw_params_set_avail_min")
        try checkALSA(snd_pcm_sw_params_set_start_threshold(pcm, sw, 1), "snd_pcm_sw_params_set_start_threshold")
        // Overrun (xrun) when the ring is full: a late reader loses old audio, never new.
        try checkALSA(snd_pcm_sw_params_set_stop_threshold(pcm, sw, buffer), "snd_pcm_sw_params_set_stop_threshold")
        try checkALSA(snd_pcm_sw_params(pcm, sw), "snd_pcm_sw_params")
    }

    static func message(_ code: Int32) -> String {
        guard let text = snd_strerror(code) else { return "error \(code)" }
        return String(cString: text)
    }

    /// CLOCK_MONOTONIC, read on the audio thread right when a blocking read returns (the only
    /// moment that dates the audio; passing `now` in would date the call, not the data).
    static func now() -> MonotonicTime {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return MonotonicTime(nanoseconds: UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec))
    }
}
