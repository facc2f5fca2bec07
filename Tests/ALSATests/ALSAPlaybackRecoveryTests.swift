import ALSA
import Glibc
import Testing

/// Talkback's speaker (issue 17) through a paced device: a private PulseAudio's null sink via the
/// `pulse` plugin. A writer that stalls longer than the ring underruns the device; the next write
/// recovers (snd_pcm_recover), counts it, and playback goes on.
@Suite("ALSA playback recovery, paced device (PulseAudio)")
struct ALSAPlaybackRecoveryTests {
    @Test func aStalledWriterUnderrunsAndTheNextWriteRecovers() throws {
        let pulse = try PulseFixture()
        let definition = "pcm.speaker { type pulse; device \"s\"; server \"unix:\(pulse.socketPath)\" }\n"
        let playback = try ALSAPlayback(configuration: ALSAPlaybackConfiguration(
            device: "speaker", pcmDefinition: definition, sampleRate: 48_000, channels: 1, periodMilliseconds: 10,
            periodsPerBuffer: 4))
        defer { playback.close() }
        let second = tone(frequency: 600, seconds: 1, amplitude: 0.3)
        // 200 ms in 20 ms frames: paced by the device after the first ring's worth.
        for frame in 0..<10 { try playback.write(Array(second[(frame * 960)..<((frame + 1) * 960)])) }
        #expect(playback.statistics.underrunsRecovered == 0)
        usleep(300_000)   // the writer stalls for more than the 40 ms ring
        for frame in 10..<30 { try playback.write(Array(second[(frame * 960)..<((frame + 1) * 960)])) }
        #expect(playback.statistics.underrunsRecovered >= 1, "\(playback.statistics)")
        #expect(playback.statistics.framesWritten == 30 * 960)
    }
}
