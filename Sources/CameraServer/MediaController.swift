import Logging
import MediaSources
import NIOConcurrencyHelpers
import RTCBase

/// Owns the running media pipeline and replaces it when the settings change: viewers stay
/// connected (the hub keeps their sessions and the RTP streams continue) and get a keyframe.
/// Frames from a pipeline that was replaced are dropped, so no stale P-frame follows the new IDR.
final class MediaController: @unchecked Sendable {
    private let logger: Logger
    private let lock = NIOLock()
    private var pipeline: MediaPipeline
    private var generation = 0
    private var viewersPresent = false
    private let deliverVideo: @Sendable (EncodedVideoFrame) -> Void
    private let deliverAudio: @Sendable (EncodedAudioFrame) -> Void

    init(configuration: MediaConfiguration, logger: Logger,
         video: @escaping @Sendable (EncodedVideoFrame) -> Void,
         audio: @escaping @Sendable (EncodedAudioFrame) -> Void) throws {
        self.logger = logger
        pipeline = try MediaPipeline(configuration: configuration, logger: logger)
        deliverVideo = video
        deliverAudio = audio
    }

    var current: MediaPipeline { lock.withLock { pipeline } }

    func start() { launch(pipeline, generation: 0) }

    /// Applies new media settings: a bitrate change goes to the running encoder; anything else
    /// starts a new pipeline. Throws (and keeps the old one running) when the new one cannot start.
    func apply(_ configuration: MediaConfiguration) throws {
        let running = current
        var onlyBitrate = running.configuration
        onlyBitrate.bitrateKbps = configuration.bitrateKbps
        if onlyBitrate == configuration {
            running.setBitrate(kbps: configuration.bitrateKbps)
            running.updateConfiguration(configuration)
            return
        }
        let replacement = try MediaPipeline(configuration: configuration, logger: logger)
        let newGeneration: Int = lock.withLock {
            replacement.setViewersPresent(viewersPresent)
            generation += 1
            pipeline = replacement
            return generation
        }
        running.stop()
        launch(replacement, generation: newGeneration)
        logger.info("media restarted: \(replacement.summary)")
    }

    func requestKeyframe() { current.requestKeyframe() }

    /// Encoders run only while someone watches.
    func setViewersPresent(_ present: Bool) {
        let pipeline: MediaPipeline = lock.withLock {
            viewersPresent = present
            return self.pipeline
        }
        pipeline.setViewersPresent(present)
    }

    func stop() { current.stop() }

    private func launch(_ pipeline: MediaPipeline, generation: Int) {
        pipeline.start(
            video: { [self] frame in
                if isCurrent(generation) { deliverVideo(frame) }
            },
            audio: { [self] frame in
                if isCurrent(generation) { deliverAudio(frame) }
            })
    }

    private func isCurrent(_ candidate: Int) -> Bool { lock.withLock { generation == candidate } }
}
