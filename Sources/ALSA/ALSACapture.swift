internal import CALSA
import Glibc
import RTCBase

/// Every failure of the ALSA target; `code` is the negative errno alsa-lib returned, `message` its
/// snd_strerror text.
public enum ALSAError: Error, Equatable, Sendable, CustomStringConvertible {
    case open(device: String, code: Int32, message: String)
    /// The PCM definition text (ALSA configuration syntax) did not parse.
    case configuration(code: Int32, message: String)
    /// A hardware/software parameter the device refused (`step` names the snd_pcm_*_set call).
    case parameters(step: String, code: Int32, message: String)
    case read(code: Int32, message: String)
    /// snd_pcm_recover could not bring the stream back after an xrun/suspend.
    case recoveryFailed(code: Int32, message: String)
    case closed

    public var description: String {
        switch self {
        case let .open(device, code, message): return "opening PCM \(device) failed: \(message) (\(code))"
        case let .configuration(code, message): return "PCM definition invalid: \(message) (\(code))"
        case let .parameters(step, code, message): return "\(step) failed: \(message) (\(code))"
        case let .read(code, message): return "read failed: \(message) (\(code))"
        case let .recoveryFailed(code, message): return "xrun/suspend recovery failed: \(message) (\(code))"
        case .closed: return "PCM closed"
        }
    }
}

public struct ALSACaptureConfiguration: Equatable, Sendable {
    /// A PCM name: "default", "plughw:1,0" (the plug layer converts rate/format), or one defined in
    /// `pcmDefinition`.
    public var device: String
    /// Optional ALSA configuration text defining `device` (e.g. `pcm.mic { type pulse; device "x" }`).
    /// When set, only this text is used as configuration (snd_pcm_open_lconf): nothing global is read
    /// or changed.
    public var pcmDefinition: String?
    public var sampleRate: UInt32
    /// 1 or 2 (interleaved).
    public var channels: UInt32
    /// 10–20 ms periods; the buffer holds `periodsPerBuffer` of them.
    public var periodMilliseconds: UInt32
    public var periodsPerBuffer: UInt32

    public init(device: String = "default", pcmDefinition: String? = nil, sampleRate: UInt32 = 48_000, channels: UInt32 = 1,
                periodMilliseconds: UInt32 = 10, periodsPerBuffer: UInt32 = 4) {
        self.device = device; self.pcmDefinition = pcmDefinition; self.sampleRate = sampleRate
        self.channels = channels; self.periodMilliseconds = periodMilliseconds; self.periodsPerBuffer = periodsPerBuffer
    }
}

/// A file descriptor the daemon's event loop must watch for this capture.
public struct ALSAPollDescriptor: Equatable, Sendable {
    public var fileDescriptor: Int32
    public var events: Int16
}

/// Interleaved S16 samples read in one go.
public struct ALSAAudioChunk: Equatable, Sendable {
    /// Interleaved, `frameCount * channels` samples.
    public var samples: [Int16]
    public var frameCount: Int
    public var channels: Int
    /// CLOCK_MONOTONIC time the first frame was captured (`now` minus the PCM delay): the base of
    /// V4L2 timestamps too.
    public var captureTime: MonotonicTime
    /// Frames read before this chunk since the stream started (sample clock for RTP timestamps).
    public var firstFrameIndex: UInt64
    /// Frames were lost just before this chunk (an xrun/suspend was recovered or a backlog skipped).
    public var followsDiscontinuity: Bool
}

public struct ALSACaptureStatistics: Equatable, Sendable {
    public var framesRead: UInt64 = 0
    /// -EPIPE (overrun) recovered with snd_pcm_recover.
    public var overrunsRecovered = 0
    /// -ESTRPIPE (suspend) recovered with snd_pcm_recover.
    public var suspendsRecovered = 0
    /// Backlogs larger than the buffer that the device did not report as xrun (sound servers keep
    /// buffering): skipped so latency stays bounded.
    public var backlogsSkipped = 0
    public var framesSkipped: UInt64 = 0
    /// Streams restarted because the device reported a delay of several buffers but nothing to read.
    public var stallsRestarted = 0
    public init() {}

    /// Every recovery of any kind.
    public var recoveries: Int { overrunsRecovered + suspendsRecovered + backlogsSkipped + stallsRestarted }
}

/// An ALSA capture PCM in non-blocking mode: the daemon polls `pollDescriptors` and calls
/// `read(now:)` when they are ready.
public final class ALSACapture {
    public let configuration: ALSACaptureConfiguration
    /// What the device agreed to.
    public private(set) var sampleRate: UInt32 = 0
    public private(set) var channels: UInt32 = 0
    public private(set) var periodFrames = 0
    public private(set) var bufferFrames = 0
    public private(set) var statistics = ALSACaptureStatistics()

    private var pcm: OpaquePointer?
    private var pendingDiscontinuity = false
    private var readBuffer: [Int16] = []

    /// Opens the PCM, sets S16_LE / rate / channels / period / buffer and starts capturing.
    public init(configuration: ALSACaptureConfiguration) throws(ALSAError) {
        self.configuration = configuration
        pcm = try Self.open(configuration)
        do {
            try configure()
            try check(snd_pcm_prepare(pcm), "snd_pcm_prepare")
            try check(snd_pcm_start(pcm), "snd_pcm_start")
        } catch {
            snd_pcm_close(pcm)
            pcm = nil
            throw error
        }
        readBuffer = Array(repeating: 0, count: bufferFrames * Int(channels))
    }

    deinit { close() }

    public func close() {
        guard let pcm else { return }
        snd_pcm_close(pcm)
        self.pcm = nil
    }

    private static func open(_ configuration: ALSACaptureConfiguration) throws(ALSAError) -> OpaquePointer? {
        var handle: OpaquePointer?
        let mode = Int32(SND_PCM_NONBLOCK)
        let result: Int32
        if let definition = configuration.pcmDefinition {
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
            result = snd_pcm_open_lconf(&handle, configuration.device, SND_PCM_STREAM_CAPTURE, mode, top)
        } else {
            result = snd_pcm_open(&handle, configuration.device, SND_PCM_STREAM_CAPTURE, mode)
        }
        guard result >= 0, handle != nil else {
            throw .open(device: configuration.device, code: result, message: message(result))
        }
        return handle
    }

    private func configure() throws(ALSAError) {
        var hw: OpaquePointer?
        try check(snd_pcm_hw_params_malloc(&hw), "snd_pcm_hw_params_malloc")
        defer { snd_pcm_hw_params_free(hw) }
        try check(snd_pcm_hw_params_any(pcm, hw), "snd_pcm_hw_params_any")
        try check(snd_pcm_hw_params_set_rate_resample(pcm, hw, 1), "snd_pcm_hw_params_set_rate_resample")
        try check(snd_pcm_hw_params_set_access(pcm, hw, SND_PCM_ACCESS_RW_INTERLEAVED), "snd_pcm_hw_params_set_access")
        try check(snd_pcm_hw_params_set_format(pcm, hw, SND_PCM_FORMAT_S16_LE), "snd_pcm_hw_params_set_format(S16_LE)")
        try check(snd_pcm_hw_params_set_channels(pcm, hw, configuration.channels), "snd_pcm_hw_params_set_channels")
        var rate = configuration.sampleRate
        var direction: Int32 = 0
        try check(snd_pcm_hw_params_set_rate_near(pcm, hw, &rate, &direction), "snd_pcm_hw_params_set_rate_near")
        var period = snd_pcm_uframes_t(rate * min(max(configuration.periodMilliseconds, 10), 20) / 1000)
        direction = 0
        try check(snd_pcm_hw_params_set_period_size_near(pcm, hw, &period, &direction), "snd_pcm_hw_params_set_period_size_near")
        var buffer = period * snd_pcm_uframes_t(max(configuration.periodsPerBuffer, 2))
        try check(snd_pcm_hw_params_set_buffer_size_near(pcm, hw, &buffer), "snd_pcm_hw_params_set_buffer_size_near")
        try check(snd_pcm_hw_params(pcm, hw), "snd_pcm_hw_params")

        try check(snd_pcm_hw_params_get_rate(hw, &rate, &direction), "snd_pcm_hw_params_get_rate")
        try check(snd_pcm_hw_params_get_period_size(hw, &period, &direction), "snd_pcm_hw_params_get_period_size")
        try check(snd_pcm_hw_params_get_buffer_size(hw, &buffer), "snd_pcm_hw_params_get_buffer_size")
        var channelCount: UInt32 = 0
        try check(snd_pcm_hw_params_get_channels(hw, &channelCount), "snd_pcm_hw_params_get_channels")
        sampleRate = rate
        channels = channelCount
        periodFrames = Int(period)
        bufferFrames = Int(buffer)

        var sw: OpaquePointer?
        try check(snd_pcm_sw_params_malloc(&sw), "snd_pcm_sw_params_malloc")
        defer { snd_pcm_sw_params_free(sw) }
        try check(snd_pcm_sw_params_current(pcm, sw), "snd_pcm_sw_params_current")
        // Wake the poll loop once per period; start as soon as the PCM is started or read.
        try check(snd_pcm_sw_params_set_avail_min(pcm, sw, period), "snd_pcm_sw_params_set_avail_min")
        try check(snd_pcm_sw_params_set_start_threshold(pcm, sw, 1), "snd_pcm_sw_params_set_start_threshold")
        try check(snd_pcm_sw_params(pcm, sw), "snd_pcm_sw_params")
    }

    // MARK: event loop integration

    /// The fds (and events) to poll; for a sound server plugin these are its own, not a card's.
    public var pollDescriptors: [ALSAPollDescriptor] {
        guard let pcm else { return [] }
        let count = snd_pcm_poll_descriptors_count(pcm)
        guard count > 0 else { return [] }
        var fds = Array(repeating: pollfd(fd: -1, events: 0, revents: 0), count: Int(count))
        let filled = snd_pcm_poll_descriptors(pcm, &fds, UInt32(count))
        guard filled > 0 else { return [] }
        return fds.prefix(Int(filled)).map { ALSAPollDescriptor(fileDescriptor: $0.fd, events: $0.events) }
    }

    /// Translates the `revents` poll(2) reported for `pollDescriptors` (same order) into whether the
    /// PCM is readable (snd_pcm_poll_descriptors_revents: plugins demangle their own fds).
    public func isReadable(revents: [Int16]) -> Bool {
        guard let pcm else { return false }
        let descriptors = pollDescriptors
        guard descriptors.count == revents.count else { return true }  // let read() find out
        var fds = zip(descriptors, revents).map { pollfd(fd: $0.fileDescriptor, events: $0.events, revents: $1) }
        var result: UInt16 = 0
        guard snd_pcm_poll_descriptors_revents(pcm, &fds, UInt32(fds.count), &result) >= 0 else { return true }
        return Int32(result) & (Int32(POLLIN) | Int32(POLLERR)) != 0
    }

    // MARK: reading

    /// Reads everything available without blocking (nil when nothing was). `now` is CLOCK_MONOTONIC
    /// read by the caller just before: the chunk's capture time is `now` minus the PCM delay.
    /// Overruns and suspends are recovered (counted) and the next chunk is flagged as following a
    /// discontinuity; only an unrecoverable error throws.
    public func read(now: MonotonicTime) throws(ALSAError) -> ALSAAudioChunk? {
        guard let pcm else { throw .closed }
        // snd_pcm_avail (it syncs the hardware pointer; snd_pcm_avail_delay does not move it for the
        // ioplug-based `pulse` PCM in alsa-lib 1.2.8), then the delay.
        let available = snd_pcm_avail(pcm)
        if available < 0 {
            try recover(Int32(available))
            return nil
        }
        var delay: snd_pcm_sframes_t = 0
        var code = snd_pcm_delay(pcm, &delay)
        if code < 0 {
            try recover(code)
            return nil
        }
        // A sound server keeps buffering behind a stalled reader without reporting an xrun. The
        // alsa-lib `pulse` plugin then reports a delay of many buffers while `avail` stays 0 for
        // good (its fake ring pointer wrapped): restart the stream, as an xrun recovery would.
        if delay > 8 * snd_pcm_sframes_t(bufferFrames), available < snd_pcm_sframes_t(periodFrames) {
            _ = snd_pcm_drop(pcm)
            try check(snd_pcm_prepare(pcm), "snd_pcm_prepare")
            _ = snd_pcm_start(pcm)
            statistics.stallsRestarted += 1
            pendingDiscontinuity = true
            return nil
        }
        // More than a whole buffer waiting means we are late: drop all but one period (freshest
        // audio wins).
        if available > bufferFrames {
            let excess = available - snd_pcm_sframes_t(periodFrames)
            let skipped = skip(frames: Int(excess))
            if skipped > 0 {
                statistics.backlogsSkipped += 1
                statistics.framesSkipped += UInt64(skipped)
                pendingDiscontinuity = true
                delay -= snd_pcm_sframes_t(skipped)
            }
        }
        let channelCount = Int(channels)
        let framesRead = readBuffer.withUnsafeMutableBufferPointer { buffer in
            snd_pcm_readi(pcm, buffer.baseAddress, snd_pcm_uframes_t(bufferFrames))
        }
        if framesRead < 0 {
            code = Int32(framesRead)
            if code == -EAGAIN { return nil }
            try recover(code)
            return nil
        }
        guard framesRead > 0 else { return nil }
        let count = Int(framesRead)
        // The first frame read is `delay` frames old (delay counts what waits in the buffer + the
        // device's own latency).
        let age = Duration.nanoseconds(Int64(max(delay, snd_pcm_sframes_t(count))) * 1_000_000_000 / Int64(sampleRate))
        let chunk = ALSAAudioChunk(samples: Array(readBuffer[0..<count * channelCount]), frameCount: count, channels: channelCount,
                                   captureTime: now - age, firstFrameIndex: statistics.framesRead,
                                   followsDiscontinuity: pendingDiscontinuity)
        pendingDiscontinuity = false
        statistics.framesRead += UInt64(count)
        return chunk
    }

    /// snd_pcm_recover for -EPIPE (overrun) and -ESTRPIPE (suspend), then restart the capture.
    private func recover(_ code: Int32) throws(ALSAError) {
        guard code == -EPIPE || code == -ESTRPIPE else {
            throw .read(code: code, message: Self.message(code))
        }
        let result = snd_pcm_recover(pcm, code, 1)
        guard result >= 0 else { throw .recoveryFailed(code: result, message: Self.message(result)) }
        if code == -EPIPE { statistics.overrunsRecovered += 1 } else { statistics.suspendsRecovered += 1 }
        pendingDiscontinuity = true
        // After recovery the PCM is PREPARED; capture must be started again.
        if snd_pcm_state(pcm) == SND_PCM_STATE_PREPARED { _ = snd_pcm_start(pcm) }
    }

    /// Discards `frames` captured frames: snd_pcm_forward where the plugin supports it, else reads.
    private func skip(frames: Int) -> Int {
        guard frames > 0, let pcm else { return 0 }
        let forwarded = snd_pcm_forward(pcm, snd_pcm_uframes_t(frames))
        if forwarded >= 0 && Int(forwarded) == frames { return frames }
        var skipped = max(0, Int(forwarded))
        while skipped < frames {
            let chunk = min(frames - skipped, bufferFrames)
            let got = readBuffer.withUnsafeMutableBufferPointer { snd_pcm_readi(pcm, $0.baseAddress, snd_pcm_uframes_t(chunk)) }
            if got <= 0 { break }
            skipped += Int(got)
        }
        return skipped
    }

    private func check(_ code: Int32, _ step: String) throws(ALSAError) {
        if code < 0 { throw .parameters(step: step, code: code, message: Self.message(code)) }
    }

    static func message(_ code: Int32) -> String {
        guard let text = snd_strerror(code) else { return "error \(code)" }
        return String(cString: text)
    }
}
