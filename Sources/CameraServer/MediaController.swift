import Logging
import MediaSources
import NIOConcurrencyHelpers
import RTCBase

/// Owns the running media pipeline and replaces it when the settings change: viewers stay
/// connected (the hub keeps their sessions and the RTP streams continue) and get a keyframe.
/// Each pipeline delivers its frames to the sink with its own generation; the sink drops those of a
/// pipeline that was replaced, so no stale P-frame follows the new IDR.
final class MediaController: EncoderControl, @unchecked Sendable {
    private let logger: Logger
    private let lock = NIOLock()
    private var pipeline: MediaPipeline
    private var generation = 0
    private var viewersPresent = false
    private var bitrateCap: Int?
    private var reducedLayerKbps: Int?
    private var sink: EncodedFrameSink?
    /// Snapshot and MJPEG clients: one for the daemon, handed to every pipeline.
    let stills: StillFrames

    init(configuration: MediaConfiguration, logger: Logger, stills: StillFrames = StillFrames()) throws {
        self.logger = logger
        self.stills = stills
        pipeline = try MediaPipeline(configuration: configuration, logger: logger, stills: stills)
        stills.setDemandListener { [weak self] in self?.current.stillsDemandChanged() }
    }

    var current: MediaPipeline { lock.withLock { pipeline } }

    /// Starts the first pipeline, its frames going to `sink` (the hub).
    func start(delivering sink: EncodedFrameSink) {
        let pipeline: MediaPipeline = lock.withLock {
            self.sink = sink
            return self.pipeline
        }
        sink.beginGeneration(0)
        pipeline.start(sink: sink, generation: 0)
    }

    /// Applies new media settings: a bitrate change goes to the running encoder; anything else
    /// starts a new pipeline. Throws (and keeps the old settings running) when the new one cannot start.
    ///
    /// A camera is one device: a second open cannot set its format while the running pipeline
    /// streams from it (EBUSY from vivid and uvcvideo), and `auto` would not find it usable. So a
    /// pipeline that holds a camera is stopped first (which closes it), and if the new settings fail
    /// the old ones are set up again.
    func apply(_ configuration: MediaConfiguration) throws {
        let running = current
        var onlyBitrate = running.configuration
        onlyBitrate.bitrateKbps = configuration.bitrateKbps
        if onlyBitrate == configuration {
            running.setBitrate(kbps: configuration.bitrateKbps)
            running.updateConfiguration(configuration)
            return
        }
        let replacement: MediaPipeline
        if running.holdsCamera {
            running.stop()
            do {
                replacement = try MediaPipeline(configuration: configuration, logger: logger, stills: stills)
            } catch {
                do {
                    install(try MediaPipeline(configuration: running.configuration, logger: logger, stills: stills))
                } catch let restoring {
                    logger.critical("the camera could not be opened again with the previous settings either: \(restoring)")
                }
                throw error
            }
        } else {
            replacement = try MediaPipeline(configuration: configuration, logger: logger, stills: stills)
        }
        install(replacement)
        running.stop()   // a camera pipeline stopped above already; stopping twice is harmless
        // The old pipeline's threads have ended; what they freed stays in their malloc arenas,
        // which no thread of the new one may use again (issue 20: 3-8 MB per size change measured).
        ProcessMemory.releaseFreedHeap()
        logger.info("media restarted: \(replacement.summary)")
    }

    /// Makes `replacement` the running pipeline and starts it; frames of the previous one are
    /// dropped from now on.
    private func install(_ replacement: MediaPipeline) {
        let (newGeneration, sink): (Int, EncodedFrameSink?) = lock.withLock {
            replacement.setViewersPresent(viewersPresent)
            replacement.setBitrateCap(kbps: bitrateCap)
            replacement.setReducedLayer(kbps: reducedLayerKbps)
            generation += 1
            pipeline = replacement
            return (generation, self.sink)
        }
        guard let sink else { return }  // not started yet: start() launches it
        sink.beginGeneration(newGeneration)
        replacement.start(sink: sink, generation: newGeneration)
    }

    func requestKeyframe() { current.requestKeyframe() }

    func requestReducedKeyframe() { current.requestReducedKeyframe() }

    /// Kept for the pipelines that replace this one, like the cap.
    func setReducedLayer(kbps: Int?) {
        let pipeline: MediaPipeline = lock.withLock {
            reducedLayerKbps = kbps
            return self.pipeline
        }
        pipeline.setReducedLayer(kbps: kbps)
    }

    /// Kept for the pipelines that replace this one (settings changes keep the viewers and their links).
    func setBitrateCap(kbps: Int?) {
        let pipeline: MediaPipeline = lock.withLock {
            bitrateCap = kbps
            return self.pipeline
        }
        pipeline.setBitrateCap(kbps: kbps)
    }

    /// Not kept for a replacement pipeline: an episode lasts a few seconds, and a new pipeline's
    /// first picture is an IDR anyway.
    func setViewerLinksCongested(full: Bool, reduced: Bool) { current.setViewerLinksCongested(full: full, reduced: reduced) }

    /// Encoders run only while someone watches.
    func setViewersPresent(_ present: Bool) {
        let pipeline: MediaPipeline = lock.withLock {
            viewersPresent = present
            return self.pipeline
        }
        pipeline.setViewersPresent(present)
    }

    func stop() { current.stop() }
}
