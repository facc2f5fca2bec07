import ALSA
import MediaSources
import Opus
import RTCBase
import SystemSupport

/// One audio input, run on the pipeline's audio thread until `controls.isRunning` goes false: each
/// 20 ms Opus frame (RFC 7587 §4.2) goes to `deliver`. One type per input kind.
protocol AudioProducer: Sendable {
    func run(_ controls: MediaThreadControls, deliver: (EncodedAudioFrame) -> Void)
}

/// Opus for the audio thread, made when someone listens and kept like x264 (`WhileWatched`).
private func makeOpusEncoder(_ controls: MediaThreadControls) throws -> OpusEncoder {
    let made = try OpusEncoder(channels: 1, bitrate: 32_000)
    controls.counters.withLock { $0.audioEncodersOpened += 1 }
    return made
}

/// The synthetic tone (a function of time), paced on CLOCK_MONOTONIC in 20 ms steps.
struct TestToneProducer: AudioProducer {
    func run(_ controls: MediaThreadControls, deliver: (EncodedAudioFrame) -> Void) {
        let tone = TestToneSource(channels: 1)
        var encoder = WhileWatched<OpusEncoder>(keepFor: controls.idleRelease)
        let frameSamples = 960  // 20 ms at 48 kHz (RFC 7587 §4.2)
        var sampleIndex = TestToneSource.sampleIndex(at: MonotonicClock.now())
        while controls.isRunning {
            guard controls.isWatched else {
                encoder.unwatched(at: MonotonicClock.now())
                controls.sleepWhileUnwatched()
                sampleIndex = TestToneSource.sampleIndex(at: MonotonicClock.now())  // the tone is a function of time
                continue
            }
            let captureTime = TestToneSource.time(ofSample: sampleIndex)
            MonotonicClock.sleep(until: captureTime + .milliseconds(20))
            let now = MonotonicClock.now()
            if now - captureTime > .milliseconds(200) {
                sampleIndex = TestToneSource.sampleIndex(at: now)  // fell far behind: resynchronise
                continue
            }
            let pcm = controls.measuringCPU(\.audioEncoderCPUNanoseconds) { tone.samples(startingAt: sampleIndex, count: frameSamples) }
            sampleIndex += Int64(frameSamples)
            do {
                guard let opus = try encoder.use(at: now, make: { try makeOpusEncoder(controls) }) else { continue }
                deliver(try controls.measuringCPU(\.audioEncoderCPUNanoseconds) { try opus.encode(pcm, captureTime: captureTime) })
            } catch {
                controls.logger.error("audio encoding failed: \(error)")
            }
        }
    }
}

/// An ALSA microphone, read period by period (always, so the device never overruns) and encoded
/// while someone watches; a device that fails is reopened every second.
struct MicrophoneProducer: AudioProducer, @unchecked Sendable {
    let first: ALSACapture

    /// 48 kHz mono S16 (the plug layer converts), one 20 ms period per Opus frame (RFC 7587 §4.2),
    /// blocking reads on the audio thread.
    static func open(_ device: String) throws -> ALSACapture {
        try ALSACapture(configuration: ALSACaptureConfiguration(device: device, sampleRate: 48_000, channels: 1,
                                                                periodMilliseconds: 20))
    }

    func run(_ controls: MediaThreadControls, deliver: (EncodedAudioFrame) -> Void) {
        var encoder = WhileWatched<OpusEncoder>(keepFor: controls.idleRelease)
        var capture: ALSACapture? = first
        let device = first.configuration.device
        var closedDevicesStatistics = ALSACaptureStatistics()
        while controls.isRunning {
            guard let current = capture else {
                MonotonicClock.sleep(until: MonotonicClock.now() + .seconds(1))
                do {
                    capture = try Self.open(device)
                    controls.logger.notice("microphone \(device) is back")
                } catch {
                    controls.logger.debug("microphone \(device) still gone: \(error)")
                }
                continue
            }
            do {
                let chunk = try current.readPeriod()
                controls.counters.withLock { $0.microphone = closedDevicesStatistics.adding(current.statistics) }
                guard controls.isWatched else {
                    encoder.unwatched(at: chunk.captureTime)
                    continue
                }
                guard chunk.samples.count == 960 else { continue }
                // Talkback (issue 17): silence while it plays and 200 ms after (half duplex), or its
                // echo cancelled (full duplex).
                let samples = MicrophoneGate.shared.process(chunk.samples, capturedAt: chunk.captureTime)
                // The encoder's own errors are not the microphone's: they must not close the device.
                do {
                    guard let opus = try encoder.use(at: chunk.captureTime, make: { try makeOpusEncoder(controls) }) else { continue }
                    deliver(try controls.measuringCPU(\.audioEncoderCPUNanoseconds) {
                        try opus.encode(samples, captureTime: chunk.captureTime)
                    })
                } catch {
                    controls.logger.error("audio encoding failed: \(error)")
                }
            } catch {
                controls.logger.error("microphone \(device) stopped: \(error); waiting for it to come back")
                closedDevicesStatistics = closedDevicesStatistics.adding(current.statistics)
                current.close()
                capture = nil
            }
        }
        capture?.close()
    }
}
