internal import CSpeexDSP

/// Acoustic echo cancellation for full-duplex talkback (issue 17), by speexdsp's MDF canceller
/// (Debian's libspeexdsp) and its preprocessor's residual echo suppression. The one owner of both
/// handles; one thread at a time (the microphone's).
///
/// Each call takes one frame of the microphone and the reference: what the speaker played at the
/// moments the microphone heard (aligned by the caller, a little early: the filter covers the echo
/// path's delay up to its length). Returns the microphone with the echo taken out.
public final class SpeexEchoCanceller: @unchecked Sendable {
    public let frameSize: Int
    public let sampleRate: Int
    private let echo: OpaquePointer
    private let preprocess: OpaquePointer

    /// `filterMilliseconds`: the longest echo path (delay plus reverberation) the filter models.
    public init?(frameSize: Int = 960, sampleRate: Int = 48_000, filterMilliseconds: Int = 200) {
        guard frameSize > 0, sampleRate > 0, filterMilliseconds > 0,
              let echo = speex_echo_state_init(Int32(frameSize), Int32(sampleRate * filterMilliseconds / 1000)) else { return nil }
        guard let preprocess = speex_preprocess_state_init(Int32(frameSize), Int32(sampleRate)) else {
            speex_echo_state_destroy(echo)
            return nil
        }
        var rate = Int32(sampleRate)
        _ = speex_echo_ctl(echo, SPEEX_ECHO_SET_SAMPLING_RATE, &rate)
        // Residual echo suppression by the preprocessor, which reads the canceller's state; no
        // denoising (the microphone's own sound is left as it is).
        _ = speex_preprocess_ctl(preprocess, SPEEX_PREPROCESS_SET_ECHO_STATE, UnsafeMutableRawPointer(echo))
        var off: Int32 = 0
        _ = speex_preprocess_ctl(preprocess, SPEEX_PREPROCESS_SET_DENOISE, &off)
        _ = speex_preprocess_ctl(preprocess, SPEEX_PREPROCESS_SET_AGC, &off)
        self.echo = echo
        self.preprocess = preprocess
        self.frameSize = frameSize
        self.sampleRate = sampleRate
    }

    deinit {
        speex_preprocess_state_destroy(preprocess)
        speex_echo_state_destroy(echo)
    }

    /// `microphone` and `reference`: `frameSize` samples each (others are returned unchanged).
    public func process(microphone: [Int16], reference: [Int16]) -> [Int16] {
        guard microphone.count == frameSize, reference.count == frameSize else { return microphone }
        var output = [Int16](repeating: 0, count: frameSize)
        microphone.withUnsafeBufferPointer { near in
            reference.withUnsafeBufferPointer { far in
                output.withUnsafeMutableBufferPointer { out in
                    speex_echo_cancellation(echo, near.baseAddress, far.baseAddress, out.baseAddress)
                }
            }
        }
        output.withUnsafeMutableBufferPointer { out in _ = speex_preprocess_run(preprocess, out.baseAddress) }
        return output
    }

    /// Forgets the echo path (a new speaker, or after a long silence).
    public func reset() { speex_echo_state_reset(echo) }
}
