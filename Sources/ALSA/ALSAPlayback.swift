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
            try checkALSA(snd_pcm_prepare(pcm), "snd_pcm_prepare")
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
        try checkALSA(snd_pcm_prepare(pcm), "snd_pcm_prepare")
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
        let agreed = try negotiateInterleavedS16(pcm, sampleRate: configuration.sampleRate, channels: configuration.channels,
                                                 periodMilliseconds: configuration.periodMilliseconds,
                                                 periodsPerBuffer: configuration.periodsPerBuffer)
        let period = agreed.periodFrames, buffer = agreed.bufferFrames
        sampleRate = agreed.sampleRate
        channels = agreed.channels
        periodFrames = Int(period)
        bufferFrames = Int(buffer)

        var sw: OpaquePointer?
        try checkALSA(snd_pcm_sw_params_malloc(&sw), "snd_pcm_sw_params_malloc")
        defer { snd_pcm_sw_params_free(sw) }
        try checkALSA(snd_pcm_sw_params_current(pcm, sw), "snd_pcm_sw_params_current")
        try checkALSA(snd_pcm_sw_params_set_avail_min(pcm, sw, period), "snd_pcm_sw_params_set_avail_min")
        // Start once the ring is full: the device has a whole buffer of margin from the first frame.
        try checkALSA(snd_pcm_sw_params_set_start_threshold(pcm, sw, buffer), "snd_pcm_sw_params_set_start_threshold")
        try checkALSA(snd_pcm_sw_params(pcm, sw), "snd_pcm_sw_params")
    }
}
