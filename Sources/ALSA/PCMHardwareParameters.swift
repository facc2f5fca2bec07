internal import CALSA
import Glibc

/// What the driver agreed to for an interleaved S16_LE stream.
struct NegotiatedPCMParameters {
    var sampleRate: UInt32
    var channels: UInt32
    var periodFrames: snd_pcm_uframes_t
    var bufferFrames: snd_pcm_uframes_t
}

/// S16_LE, interleaved read/write access, the exact rate and channel count (the plug layer may
/// convert: snd_pcm_hw_params_set_rate_resample), a period near `periodMilliseconds` and a buffer
/// of `periodsPerBuffer` periods. Shared by capture and playback; each sets its own sw params.
func negotiateInterleavedS16(_ pcm: OpaquePointer?, sampleRate: UInt32, channels: UInt32, periodMilliseconds: UInt32,
                             periodsPerBuffer: UInt32) throws(ALSAError) -> NegotiatedPCMParameters {
    var hw: OpaquePointer?
    try checkALSA(snd_pcm_hw_params_malloc(&hw), "snd_pcm_hw_params_malloc")
    defer { snd_pcm_hw_params_free(hw) }
    try checkALSA(snd_pcm_hw_params_any(pcm, hw), "snd_pcm_hw_params_any")
    try checkALSA(snd_pcm_hw_params_set_rate_resample(pcm, hw, 1), "snd_pcm_hw_params_set_rate_resample")
    try checkALSA(snd_pcm_hw_params_set_access(pcm, hw, SND_PCM_ACCESS_RW_INTERLEAVED), "snd_pcm_hw_params_set_access(RW_INTERLEAVED)")
    try checkALSA(snd_pcm_hw_params_set_format(pcm, hw, SND_PCM_FORMAT_S16_LE), "snd_pcm_hw_params_set_format(S16_LE)")
    try checkALSA(snd_pcm_hw_params_set_channels(pcm, hw, channels),
                  "snd_pcm_hw_params_set_channels(\(channels)) (use a plug PCM to convert)")
    try checkALSA(snd_pcm_hw_params_set_rate(pcm, hw, sampleRate, 0),
                  "snd_pcm_hw_params_set_rate(\(sampleRate)) (use a plug PCM to resample)")
    var period = snd_pcm_uframes_t(sampleRate * periodMilliseconds / 1000)
    var direction: Int32 = 0
    try checkALSA(snd_pcm_hw_params_set_period_size_near(pcm, hw, &period, &direction), "snd_pcm_hw_params_set_period_size_near")
    var buffer = period * snd_pcm_uframes_t(periodsPerBuffer)
    try checkALSA(snd_pcm_hw_params_set_buffer_size_near(pcm, hw, &buffer), "snd_pcm_hw_params_set_buffer_size_near")
    try checkALSA(snd_pcm_hw_params(pcm, hw), "snd_pcm_hw_params")

    var rate: UInt32 = 0
    direction = 0
    try checkALSA(snd_pcm_hw_params_get_rate(hw, &rate, &direction), "snd_pcm_hw_params_get_rate")
    try checkALSA(snd_pcm_hw_params_get_period_size(hw, &period, &direction), "snd_pcm_hw_params_get_period_size")
    try checkALSA(snd_pcm_hw_params_get_buffer_size(hw, &buffer), "snd_pcm_hw_params_get_buffer_size")
    var channelCount: UInt32 = 0
    try checkALSA(snd_pcm_hw_params_get_channels(hw, &channelCount), "snd_pcm_hw_params_get_channels")
    return NegotiatedPCMParameters(sampleRate: rate, channels: channelCount, periodFrames: period, bufferFrames: buffer)
}

/// An alsa-lib call's negative result as the typed error naming the step.
func checkALSA(_ code: Int32, _ step: String) throws(ALSAError) {
    if code < 0 { throw .parameters(step: step, code: code, message: ALSACapture.message(code)) }
}
