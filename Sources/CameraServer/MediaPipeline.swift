#if canImport(Glibc)
import Glibc
#endif
import ALSA
import Logging
import MediaSources
import NIOConcurrencyHelpers
import RTCBase
import Synchronization
import SystemSupport
import V4L2

/// What /api/status shows about the media side.
struct MediaStatus: Sendable {
    var source: String
    var audio: String
    var encoder: String
    var width: Int
    var height: Int
    var framesPerSecond: Double
    var bitrateKbps: Double
    var framesEncoded: Int
    var keyframesForced: Int
    /// Periodic IDRs x264 held while a viewer's link was congested, and the longest wait (issue 24).
    var periodicKeyframesHeld = 0
    var longestKeyframeHold: Duration? = nil
    /// The video thread's CPU inside x264 (encode calls) and drawing the test pattern, since the
    /// pipeline started: the rest of the daemon's CPU is what streaming costs beyond encoding.
    var encoderCPUSeconds: Double
    /// The reduced encoding (issue 24): its frames and its part of `encoderCPUSeconds`.
    var reducedLayerFrames = 0
    var reducedLayerCPUSeconds = 0.0
    /// The reduced encoding's periodic IDRs held while a viewer's link was congested.
    var reducedLayerKeyframesHeld = 0
    var testPatternCPUSeconds: Double
    /// The audio thread's CPU inside Opus (and making the test tone's samples).
    var audioEncoderCPUSeconds: Double
    /// Camera frames that could not be used (a buffer that did not hold the negotiated picture).
    var framesDropped: Int
    /// What the microphone's capture read, recovered and dropped since start (nil: no microphone).
    var microphone: ALSACaptureStatistics?
    /// Why the source delivers nothing (an exec source's failing program), and its restarts.
    var sourceProblem: String? = nil
    var sourceRestarts = 0
    /// Pictures the source gave, used or not (/metrics).
    var framesCaptured = 0
    /// A camera's state: streaming or lost (unplugged), its losses and reopen attempts.
    var camera = CameraRecoveryStatus(state: "streaming", lostSeconds: 0, losses: 0, failedReopens: 0)
    /// x264's CPU adaptation: configured and current encoded size and rate, and why.
    var adaptation: EncoderAdaptationStatus? = nil
    /// The pixel format the camera gives ("NV12", "YUYV", "MJPG", "H264"; nil: not a V4L2 camera),
    /// and why it was chosen.
    var cameraPixelFormat: String? = nil
    var cameraFormatReason: String? = nil
    /// A camera's own JPEGs (MJPEG capture) and the CPU their decoding took.
    var cameraJPEG: CameraJPEGCounters? = nil
    var jpegDecodeCPUSeconds = 0.0
}

/// Capture and encoding, once for every viewer: a video thread (source → H.264) and an audio thread
/// (source → Opus), each running one producer (VideoProducers.swift, AudioProducers.swift) and
/// handing its finished frames to the hub itself. What to open is MediaSourcePlan's decision; this
/// opens it (falling back to the synthetic sources under `auto`, saying why), starts, stops and
/// reports.
final class MediaPipeline: @unchecked Sendable {
    private let configurationBox: NIOLockedValueBox<MediaConfiguration>
    var configuration: MediaConfiguration { configurationBox.withLockedValue { $0 } }
    /// The H.264 profile-level-id the encoder produces: Constrained Baseline (every browser decodes it,
    /// DESIGN.md) at the level the picture size and rate need (H.264 Annex A, Table A-1); a
    /// passthrough stream's own.
    let h264ProfileLevelID: String
    let hasAudio: Bool
    /// How pictures become H.264 (decided at start; a hardware encoder that fails falls back to x264).
    let encoderPlan: VideoEncoderPlan
    /// Why the camera gives the pixel format it does (x264: raw or MJPEG, CameraFormatChoice).
    let cameraFormatReason: String?
    private let logger: Logger
    private let video: any VideoProducer
    private let audio: (any AudioProducer)?
    private let audioDescription: String
    private let controls: MediaThreadControls
    /// The threads `start` made, joined by `stop`.
    private let threads = Mutex<[DedicatedThread]>([])

    /// The picture size the source really delivers (a camera may adjust the request).
    var width: Int { video.width }
    var height: Int { video.height }
    var idleRelease: Duration { controls.idleRelease }

    /// Whether this pipeline has a V4L2 camera open (closed when its threads end).
    /// An exec source's program (rpicam-vid) holds the camera likewise while it runs.
    var holdsCamera: Bool { video is CameraProducer || video is ExecProducer }
    /// The V4L2 camera's device node (nil for the synthetic, file and exec sources): its controls.
    var cameraDevicePath: String? { (video as? CameraProducer)?.camera.path }

    /// The largest `file:` stream read into memory: 512 MB, or a quarter of `physicalMemory` if that
    /// is less (unknown memory: 512 MB).
    static func fileSourceLimit(physicalMemory: Int) -> Int {
        physicalMemory > 0 ? min(512 << 20, physicalMemory / 4) : 512 << 20
    }

    init(configuration: MediaConfiguration, logger: Logger, idleRelease: Duration = .seconds(10),
         idleWakeInterval: Duration = .seconds(1), stills: StillFrames = StillFrames()) throws {
        configurationBox = NIOLockedValueBox(configuration)
        self.logger = logger
        controls = MediaThreadControls(logger: logger, idleRelease: idleRelease, idleWakeInterval: idleWakeInterval,
                                       stills: stills)
        var devices = Self.describeVideoDevices()
        if case let .v4l2(path) = configuration.video, !devices.contains(where: { $0.path == path }) {
            do {
                devices.append(try V4L2Discovery.describe(path: path))   // a path discovery does not list (a by-id link)
            } catch {
                throw MediaPipelineError.unsupportedSource("cannot capture from \(path): \(error)")
            }
        }
        let microphones = DeviceListing.microphones().compactMap { $0.source.hasPrefix("alsa:") ? String($0.source.dropFirst(5)) : nil }
        let plan = try MediaSourcePlan.choose(configuration, devices: devices, microphones: microphones)
        for reason in plan.fallbacks { logger.notice("auto: \(reason)") }
        cameraFormatReason = plan.cameraFormatReason
        let box = configurationBox
        let current: CurrentConfiguration = { box.withLockedValue { $0 } }
        let encodedProfileLevelID = { (width: Int, height: Int) in
            H264Level.constrainedBaselineProfileLevelID(width: width, height: height, framesPerSecond: configuration.framesPerSecond)
        }

        switch plan.video {
        case let .camera(camera, chosen):
            let source: V4L2VideoSource?
            do {
                source = try V4L2VideoSource(path: camera.path, width: configuration.width, height: configuration.height,
                                             framesPerSecond: configuration.framesPerSecond, formats: plan.cameraFormats)
            } catch {
                guard configuration.video == .automatic else {
                    throw MediaPipelineError.unsupportedSource("cannot capture from \(camera.path): \(error)")
                }
                logger.notice("auto: test pattern: \(camera.path) could not be opened: \(error)")
                source = nil
            }
            if let source {
                if let reason = plan.cameraFormatReason {
                    logger.info("\(camera.path): \(source.negotiatedFormat) \(source.width)x\(source.height) (\(reason))")
                }
                var stream = CameraH264Stream()
                var profileLevelID = encodedProfileLevelID(source.width, source.height)
                if chosen == .passthrough {
                    stream = Self.probeParameterSets(source, logger: logger)
                    if let sps = stream.parsedSequenceParameterSet {
                        profileLevelID = sps.profileLevelID
                    } else {
                        logger.warning("\(camera.path) sent no SPS within 2 s; answering profile-level-id \(profileLevelID)")
                    }
                }
                video = CameraProducer(camera: source, plan: chosen, passthroughStream: stream,
                                       profileLevelID: profileLevelID, configuration: current)
                h264ProfileLevelID = profileLevelID
                encoderPlan = chosen
            } else {
                video = TestPatternProducer(width: configuration.width, height: configuration.height,
                                            profileLevelID: encodedProfileLevelID(configuration.width, configuration.height),
                                            configuration: current)
                h264ProfileLevelID = encodedProfileLevelID(configuration.width, configuration.height)
                encoderPlan = .x264
            }
        case .testPattern:
            let profileLevelID = encodedProfileLevelID(configuration.width, configuration.height)
            video = TestPatternProducer(width: configuration.width, height: configuration.height,
                                        profileLevelID: profileLevelID, configuration: current)
            h264ProfileLevelID = profileLevelID
            encoderPlan = .x264
        case let .file(path):
            // The stream is read into memory whole: at most 512 MB, and at most a quarter of the
            // machine's memory (a 512 MB Pi Zero 2 W would otherwise be pushed into the OOM killer).
            let limit = Self.fileSourceLimit(physicalMemory: Int(sysconf(Int32(_SC_PHYS_PAGES))) * Int(sysconf(Int32(_SC_PAGESIZE))))
            guard let bytes = StateFiles.readBytes(path, maximumSize: limit) else {
                throw MediaPipelineError.unsupportedSource("cannot read \(path) (missing, unreadable or over \(limit >> 20) MB)")
            }
            let file: AnnexBFileSource
            do {
                file = try AnnexBFileSource(stream: bytes, frameRate: configuration.framesPerSecond)
            } catch {
                throw MediaPipelineError.unsupportedSource("\(path) is not a usable Annex-B H.264 stream: \(error)")
            }
            video = FileProducer(path: path, file: file)
            // Passthrough: the stream's own SPS says what it is; the answer must name exactly that.
            h264ProfileLevelID = file.sequenceParameterSet.profileLevelID
            encoderPlan = .passthrough
        case let .exec(command):
            // The program is started once to read its SPS (the answer names its profile-level-id),
            // then again when someone watches. A program that fails now is not fatal: the source
            // keeps starting it (with backoff) and says why in the log and /api/status.
            let (stream, problem) = ExecProducer.probe(command, configuration: configuration, timeout: .seconds(5), logger: logger)
            let sps = stream.parsedSequenceParameterSet
            if let problem {
                logger.warning("exec source: \(problem); answering profile-level-id \(encodedProfileLevelID(configuration.width, configuration.height)) until it works")
            }
            video = ExecProducer(template: command, width: sps?.width ?? configuration.width, height: sps?.height ?? configuration.height,
                                 probedStream: stream, configuration: current)
            h264ProfileLevelID = sps?.profileLevelID ?? encodedProfileLevelID(configuration.width, configuration.height)
            encoderPlan = .passthrough
        }

        switch plan.audio {
        case let .microphone(name):
            do {
                audio = MicrophoneProducer(first: try MicrophoneProducer.open(name))
                audioDescription = "alsa:\(name)"
            } catch {
                guard configuration.audio == .automatic else {
                    throw MediaPipelineError.unsupportedSource("cannot capture audio from \(name): \(error)")
                }
                logger.notice("auto: test tone: microphone \(name) could not be opened: \(error)")
                audio = TestToneProducer()
                audioDescription = "test-tone"
            }
        case .testTone:
            audio = TestToneProducer()
            audioDescription = "test-tone"
        case .none:
            audio = nil
            audioDescription = "none"
        }
        hasAudio = audio != nil
    }

    var encoderDescription: String {
        controls.counters.withLock { encoderDescription(running: $0.encoder) }
    }

    /// Called with the counters locked (status()) or from the getter above: never takes the lock.
    private func encoderDescription(running: String) -> String {
        running.isEmpty ? (video is FileProducer || video is ExecProducer ? "passthrough" : encoderPlan.description) : running
    }

    /// Every V4L2 node that could be described (cameras and M2M encoders alike).
    static func describeVideoDevices() -> [CameraDescription] {
        guard let all = try? V4L2Discovery.describeAll() else { return [] }
        return all.compactMap { try? $0.result.get() }
    }

    /// A camera that encodes: reads its first frames (up to 2 s) until the SPS and PPS went by, so
    /// the SDP answer can name its profile-level-id; asks for an IDR if none comes in 300 ms.
    static func probeParameterSets(_ camera: V4L2VideoSource, logger: Logger) -> CameraH264Stream {
        var stream = CameraH264Stream()
        let start = MonotonicClock.now()
        var askedForKeyframe = false
        while stream.parsedSequenceParameterSet == nil || stream.pictureParameterSet == nil {
            let now = MonotonicClock.now()
            if now - start > .seconds(2) { break }
            if !askedForKeyframe, now - start > .milliseconds(300) {
                askedForKeyframe = true
                do {
                    _ = try camera.forceKeyFrame()
                } catch {
                    logger.debug("\(camera.path) could not be asked for an IDR while probing: \(error)")
                }
            }
            do {
                try camera.withNextCapturedFrame(timeoutMilliseconds: 100) { frame in
                    _ = stream.frame(fromBuffer: frame.data, captureTime: frame.captureTime,
                                     width: camera.width, height: camera.height)
                }
            } catch {
                logger.warning("\(camera.path) failed while probing its H.264: \(error)")
                break
            }
        }
        return stream
    }

    var summary: String {
        "video \(video.description) \(width)x\(height)@\(configuration.framesPerSecond) H.264 \(h264ProfileLevelID) \(configuration.bitrateKbps) kb/s (\(encoderDescription)), audio \(audioDescription)"
    }

    /// Starts the video and audio threads; every frame they finish goes to `sink` with `generation`.
    func start(sink: EncodedFrameSink, generation: Int) {
        let (controls, video, audio) = (controls, video, audio)
        var started = [DedicatedThread.start(name: "rtcam-video") {
            video.run(controls) { sink.deliver($0, generation: generation) }
        }]
        if let audio {
            started.append(DedicatedThread.start(name: "rtcam-audio") {
                audio.run(controls) { sink.deliver($0, generation: generation) }
            })
        }
        threads.withLock { $0 += started }
    }

    func requestKeyframe() { controls.requestKeyframe() }

    func setBitrate(kbps: Int) { controls.setBitrate(kbps: kbps) }

    func setBitrateCap(kbps: Int?) { controls.setBitrateCap(kbps: kbps ?? 0) }

    func setViewerLinksCongested(full: Bool, reduced: Bool) { controls.setViewerLinksCongested(full: full, reduced: reduced) }

    func requestReducedKeyframe() { controls.requestReducedKeyframe() }

    func setReducedLayer(kbps: Int?) { controls.setReducedLayer(kbps: kbps ?? 0) }

    func setViewersPresent(_ present: Bool) { controls.setWatched(present) }

    /// Snapshot or MJPEG clients came or went (StillFrames' listener).
    func stillsDemandChanged() { controls.stillsDemandChanged() }

    /// Records settings the running pipeline took on without a restart (the bitrate).
    func updateConfiguration(_ configuration: MediaConfiguration) {
        configurationBox.withLockedValue { $0 = configuration }
    }

    /// Ends the pipeline's threads and waits for them (a camera's poll returns within 500 ms, a
    /// frame being encoded is finished), so that when this returns none of them runs or delivers a
    /// frame any more: the daemon closes the sessions and the media socket after, and a new
    /// pipeline may open the same camera. A thread stuck in a device read longer than 2 s is left to end on its own.
    func stop() {
        controls.stop()
        for thread in threads.withLock({ threads in defer { threads = [] }; return threads }) {
            if !thread.join(timeout: .seconds(2)) {
                logger.warning("a media thread did not end within 2 s of stopping (a device read hangs?)")
            }
        }
    }

    /// x264 encoders made since start (tests see the idle release through it).
    var encodersOpened: Int { controls.counters.withLock { $0.encodersOpened } }
    var audioEncodersOpened: Int { controls.counters.withLock { $0.audioEncodersOpened } }

    func status() -> MediaStatus {
        controls.counters.withLock { counters in
            MediaStatus(source: video.description, audio: audioDescription, encoder: encoderDescription(running: counters.encoder),
                        width: width, height: height,
                        framesPerSecond: counters.framesPerSecond, bitrateKbps: counters.bitrateKbps,
                        framesEncoded: counters.framesEncoded, keyframesForced: counters.keyframesForced,
                        periodicKeyframesHeld: counters.periodicKeyframesHeld, longestKeyframeHold: counters.longestKeyframeHold,
                        encoderCPUSeconds: Double(counters.encoderCPUNanoseconds) / 1e9,
                        reducedLayerFrames: counters.reducedLayerFrames,
                        reducedLayerCPUSeconds: Double(counters.reducedLayerCPUNanoseconds) / 1e9,
                        reducedLayerKeyframesHeld: counters.reducedLayerKeyframesHeld,
                        testPatternCPUSeconds: Double(counters.testPatternCPUNanoseconds) / 1e9,
                        audioEncoderCPUSeconds: Double(counters.audioEncoderCPUNanoseconds) / 1e9,
                        framesDropped: counters.framesDropped, microphone: counters.microphone,
                        sourceProblem: counters.sourceProblem, sourceRestarts: counters.sourceRestarts,
                        framesCaptured: counters.framesCaptured, camera: counters.camera.status(at: MonotonicClock.now()),
                        adaptation: counters.adaptation,
                        cameraPixelFormat: (video as? CameraProducer)?.camera.negotiatedFormat.description,
                        cameraFormatReason: cameraFormatReason, cameraJPEG: counters.cameraJPEG,
                        jpegDecodeCPUSeconds: Double(counters.jpegDecodeCPUNanoseconds) / 1e9)
        }
    }

    /// The V4L2 level control's value for a profile-level-id's level_idc.
    static func v4l2Level(_ profileLevelID: String) -> V4L2H264Level {
        V4L2H264Level(levelIDC: Int(profileLevelID.suffix(2), radix: 16) ?? 0x1F)
    }
}

enum MediaPipelineError: Error, Equatable, CustomStringConvertible {
    case unsupportedSource(String)

    var description: String {
        switch self {
        case let .unsupportedSource(reason): return reason
        }
    }
}
