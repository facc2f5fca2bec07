internal import CALSA
import Glibc

public struct ALSAPlaybackConfiguration: Equatable, Sendable {
    /// A PCM name ("hw:Loopback,0,0", "plughw:0,0", "default"), or one defined in `pcmDefinition`.
    public var device: String
    /// Optional ALSA configuration text defining `device`; when set, only this text is used.
    public var pcmDefinition: String?
    /// Exact (the device or its plug layer must take it). 8000…192000.
    public var sampleRate: UInt32
    /// 1 or 2 (interleaved).
    public var channels: UInt32
    /// 5…100 ms.
    public var periodMilliseconds: UInt32
    /// 2…16 periods in the ring buffer: what a writer may fall behind before the device underruns.
    public var periodsPerBuffer: UInt32

    public init(device: String = "default", pcmDefinition: String? = nil, sampleRate: UInt32 = 48_000, channels: UInt32 = 2,
                periodMilliseconds: UInt32 = 10, periodsPerBuffer: UInt32 = 8) {
        self.device = device; self.pcmDefinition = pcmDefinition; self.sampleRate = sampleRate
        self.channels = channels; self.periodMilliseconds = periodMilliseconds; self.periodsPerBuffer = periodsPerBuffer
    }

    func validate() throws(ALSAError) {
        try validateALSAStream(sampleRate: sampleRate, channels: channels, periodMilliseconds: periodMilliseconds,
                               periodsPerBuffer: periodsPerBuffer, periodLimits: 5...100, bufferLimits: 2...16)
    }
}

public struct ALSAPlaybackStatistics: Equatable, Sendable {
    /// Frames accepted by the device.
    public var framesWritten: UInt64 = 0
    /// -EPIPE (underrun: the writer was later than the buffer) recovered with snd_pcm_recover.
    public var underrunsRecovered = 0
    /// -ESTRPIPE (system suspend) recovered.
    public var suspendsRecovered = 0
    public init() {}
}

/// An ALSA playback PCM written in blocking mode with interleaved S16 samples: `write` returns once
/// the device has taken every frame (it blocks while the ring buffer is full, so a writer is paced
/// by the device's clock). Playback starts when the ring is full, so the first buffer's worth goes
/// in without waiting. Underruns and suspends are recovered and counted. rtcam uses it to play a
/// known signal into a loopback card (snd-aloop) whose other end `ALSACapture` reads.
/// Not thread-safe: one thread writes and closes it.
public final class ALSAPlayback {
    public let configuration: ALSAPlaybackConfiguration
    public private(set) var sampleRate: UInt32 = 0
    public private(set) var channels: UInt32 = 0
    public private(set) var periodFrames = 0
    public private(set) var bufferFrames = 0
    public private(set) var statistics = ALSAPlaybackStatistics()

    private var pcm: OpaquePointer?

    /// Opens the PCM and negotiates S16_LE / rate / channels / period / buffer; prepared, not yet running.
    public init(configuration: ALSAPlaybackConfiguration) throws(ALSAError) {
        try configuration.validate()
        self.configuration = configuration
        pcm = try ALSACapture.openPCM(device: configuration.device, definition: configuration.pcmDefinition,
                                      stream: SND_PCM_STREAM_PLAYBACK)
        do {
            try negotiate()
            try check(snd_pcm_prepare(pcm), "snd_pcm_prepare")
        } catch {
            snd_pcm_close(pcm)
            pcm = nil
            throw error
        }
    }

    deinit { close() }

    /// Stops at once (what is queued is dropped) and releases the PCM. Idempotent.
    public func close() {
        guard let pcm else { return }
        _ = snd_pcm_drop(pcm)
        snd_pcm_close(pcm)
        self.pcm = nil
    }

    public var isClosed: Bool { pcm == nil }

    /// Writes interleaved samples (`channels` per frame; a trailing partial frame is ignored),
    /// blocking until the device took them all.
    public func write(_ samples: [Int16]) throws(ALSAError) {
        guard let pcm else { throw .closed }
        let channelCount = Int(channels)
        let frames = samples.count / channelCount
        var done = 0
        var failures = 0
        while done < frames {
            let written = samples.withUnsafeBufferPointer { buffer in
                snd_pcm_writei(pcm, buffer.baseAddress! + done * channelCount, snd_pcm_uframes_t(frames - done))
            }
            if written >= 0 {
                done += Int(written)
                statistics.framesWritten += UInt64(written)
                failures = 0
                continue
            }
            failures += 1
            if failures > 100 { throw .recoveryFailed(code: Int32(written), message: "no progress after 100 recoveries") }
            try recover(Int32(written))
        }
    }

    /// Blocks until everything written has been played, then leaves the PCM prepared for more.
    public func drain() throws(ALSAError) {
        guard let pcm else { throw .closed }
        let result = snd_pcm_drain(pcm)
        if result < 0, result != -EPIPE { throw .write(code: result, message: ALSACapture.message(result)) }
        try check(snd_pcm_prepare(pcm), "snd_pcm_prepare")
    }

    /// -EPIPE (underrun), -ESTRPIPE (suspend): snd_pcm_recover, the stream restarts when the ring
    /// fills again. -EINTR/-EAGAIN: retried. Anything else is thrown.
    private func recover(_ code: Int32) throws(ALSAError) {
        guard let pcm else { throw .closed }
        if code == -EINTR || code == -EAGAIN { return }
        guard code == -EPIPE || code == -ESTRPIPE else { throw .write(code: code, message: ALSACapture.message(code)) }
        let result = snd_pcm_recover(pcm, code, 1)
        guard result >= 0 else { throw .recoveryFailed(code: result, message: ALSACapture.message(result)) }
        if code == -EPIPE { statistics.underrunsRecovered += 1 } else { statistics.suspendsRecovered += 1 }
    }

    private func negotiate() throws(ALSAError) {
        var hw: OpaquePointer?
        try check(snd_pcm_hw_params_malloc(&hw), "snd_pcm_hw_params_malloc")
        defer { snd_pcm_hw_params_free(hw) }
        try check(snd_pcm_hw_params_any(pcm, hw), "snd_pcm_hw_params_any")
        try check(snd_pcm_hw_params_set_rate_resample(pcm, hw, 1), "snd_pcm_hw_params_set_rate_resample")
        try check(snd_pcm_hw_params_set_access(pcm, hw, SND_PCM_ACCESS_RW_INTERLEAVED), "snd_pcm_hw_params_set_access(RW_INTERLEAVED)")
        try check(snd_pcm_hw_params_set_format(pcm, hw, SND_PCM_FORMAT_S16_LE), "snd_pcm_hw_params_set_format(S16_LE)")
        try check(snd_pcm_hw_params_set_channels(pcm, hw, configuration.channels),
                  "snd_pcm_hw_params_set_channels(\(configuration.channels))")
        try check(snd_pcm_hw_params_set_rate(pcm, hw, configuration.sampleRate, 0),
                  "snd_pcm_hw_params_set_rate(\(configuration.sampleRate))")
        var period = snd_pcm_uframes_t(configuration.sampleRate * configuration.periodMilliseconds / 1000)
        var direction: Int32 = 0
        try check(snd_pcm_hw_params_set_period_size_near(pcm, hw, &period, &direction), "snd_pcm_hw_params_set_period_size_near")
        var buffer = period * snd_pcm_uframes_t(configuration.periodsPerBuffer)
        try check(snd_pcm_hw_params_set_buffer_size_near(pcm, hw, &buffer), "snd_pcm_hw_params_set_buffer_size_near")
        try check(snd_pcm_hw_params(pcm, hw), "snd_pcm_hw_params")

        var rate: UInt32 = 0
        direction = 0
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
        try check(snd_pcm_sw_params_set_avail_min(pcm, sw, period), "snd_pcm_sw_params_set_avail_min")
        // Start once the ring is full: the device has a whole buffer of margin from the first frame.
        try check(snd_pcm_sw_params_set_start_threshold(pcm, sw, buffer), "snd_pcm_sw_params_set_start_threshold")
        try check(snd_pcm_sw_params(pcm, sw), "snd_pcm_sw_params")
    }

    private func check(_ code: Int32, _ step: String) throws(ALSAError) {
        if code < 0 { throw .parameters(step: step, code: code, message: ALSACapture.message(code)) }
    }
}
