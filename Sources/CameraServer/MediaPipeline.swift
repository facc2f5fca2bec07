#if canImport(Glibc)
import Glibc
#endif
import ALSA
import CMalloc
import Logging
import MediaSources
import NIOConcurrencyHelpers
import Opus
import RTCBase
import Synchronization
import V4L2
import X264
import SystemSupport

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
    /// The video thread's CPU inside x264 (encode calls) and drawing the test pattern, since the
    /// pipeline started: the rest of the daemon's CPU is what streaming costs beyond encoding.
    var encoderCPUSeconds: Double
    var testPatternCPUSeconds: Double
    /// The audio thread's CPU inside Opus (and making the test tone's samples).
    var audioEncoderCPUSeconds: Double
    /// What the microphone's capture read, recovered and dropped since start (nil: no microphone).
    var microphone: ALSACaptureStatistics?
}

/// Capture and encoding, once for every viewer: a video thread (source → H.264) and an audio thread
/// (source → Opus), each paced on CLOCK_MONOTONIC, each sending its finished frames to the viewers
/// itself (StreamHub).
final class MediaPipeline: @unchecked Sendable {
    private let configurationBox: NIOLockedValueBox<MediaConfiguration>
    var configuration: MediaConfiguration { configurationBox.withLockedValue { $0 } }
    /// The H.264 profile-level-id the encoder produces: Constrained Baseline (every browser decodes it,
    /// DESIGN.md) at the level the picture size and rate need (H.264 Annex A, Table A-1).
    let h264ProfileLevelID: String
    let hasAudio: Bool
    private let logger: Logger
    private let videoInput: VideoInput
    private let audioInput: AudioInput
    /// The picture size the source really delivers (a camera may adjust the request).
    let width: Int
    let height: Int
    private let videoDescription: String
    private let audioDescription: String
    /// How pictures become H.264 (decided at start; a hardware encoder that fails falls back to x264).
    let encoderPlan: VideoEncoderPlan
    /// Passthrough: the camera's stream as probed at start (its SPS/PPS already seen).
    private let passthroughStream: CameraH264Stream
    private let keyframeRequested = Atomic<Bool>(false)
    /// A new bitrate for the running encoder (0: none pending); x264 reconfigures without a restart.
    private let pendingBitrateKbps = Atomic<Int>(0)
    private let running = Atomic<Bool>(true)
    /// Encoding only while someone watches: on a Pi an idle camera should cost almost no CPU. The
    /// source keeps running (a camera's buffers keep cycling) so the first viewer waits for nothing
    /// but the keyframe it asks for.
    private let viewersPresent = Atomic<Bool>(false)
    private let counters = Mutex(Counters())

    /// The largest `file:` stream read into memory: 512 MB, or a quarter of `physicalMemory` if that
    /// is less (unknown memory: 512 MB).
    static func fileSourceLimit(physicalMemory: Int) -> Int {
        physicalMemory > 0 ? min(512 << 20, physicalMemory / 4) : 512 << 20
    }

    /// Whether this pipeline has a V4L2 camera open (closed when its threads end).
    var holdsCamera: Bool {
        if case .camera = videoInput { return true }
        return false
    }

    /// The threads `start` made, joined by `stop`.
    private let threads = Mutex<[DedicatedThread]>([])

    private struct Counters {
        var framesEncoded = 0
        var keyframesForced = 0
        /// x264 encoders made so far: one when the first viewer arrives, then one each time viewers
        /// return after `idleRelease`.
        var encodersOpened = 0
        /// Opus encoders made so far, likewise.
        var audioEncodersOpened = 0
        var encoder = ""
        var windowStart: MonotonicTime?
        var windowFrames = 0
        var windowBytes = 0
        var framesPerSecond = 0.0
        var bitrateKbps = 0.0
        var encoderCPUNanoseconds: UInt64 = 0
        var testPatternCPUNanoseconds: UInt64 = 0
        var audioEncoderCPUNanoseconds: UInt64 = 0
        var microphone: ALSACaptureStatistics?
    }

    /// How long x264, Opus and the test pattern's background outlive the last viewer (then their memory
    /// goes back to the system until someone watches again).
    let idleRelease: Duration

    /// While nobody watches, the synthetic sources' threads sleep this long at a time (instead of
    /// waking for every frame); a viewer's arrival wakes them at once.
    let idleWakeInterval: Duration
    /// True while someone watches; what the sleeping threads wait for.
    private let viewerArrival = ConditionLock(value: false)

    init(configuration: MediaConfiguration, logger: Logger, idleRelease: Duration = .seconds(10),
         idleWakeInterval: Duration = .seconds(1)) throws {
        configurationBox = NIOLockedValueBox(configuration)
        self.logger = logger
        self.idleRelease = idleRelease
        self.idleWakeInterval = min(idleWakeInterval, idleRelease)
        var plan = VideoEncoderPlan.x264
        switch configuration.video {
        case .automatic:
            // The first camera, else the test pattern (the embedded default) with x264.
            let devices = Self.describeVideoDevices()
            if let camera = V4L2VideoSource.firstUsableCamera(in: devices),
               let chosen = try? VideoEncoderPlan.choose(preference: configuration.encoder, camera: camera, devices: devices),
               let source = try? V4L2VideoSource(path: camera.path, width: configuration.width, height: configuration.height,
                                                 framesPerSecond: configuration.framesPerSecond, formats: chosen.cameraFormats) {
                videoInput = .camera(source)
                plan = chosen
            } else {
                videoInput = .testPattern
            }
        case .testPattern:
            do {
                plan = try VideoEncoderPlan.choose(preference: configuration.encoder, camera: nil, devices: [])
            } catch {
                throw MediaPipelineError.unsupportedSource(error.description)
            }
            videoInput = .testPattern
        case let .v4l2(path):
            let devices = Self.describeVideoDevices()
            let camera: CameraDescription
            do {
                camera = try devices.first { $0.path == path } ?? V4L2Discovery.describe(path: path)
                plan = try VideoEncoderPlan.choose(preference: configuration.encoder, camera: camera, devices: devices)
            } catch let error as VideoEncoderPlanError {
                throw MediaPipelineError.unsupportedSource(error.description)
            } catch {
                throw MediaPipelineError.unsupportedSource("cannot capture from \(path): \(error)")
            }
            do {
                videoInput = .camera(try V4L2VideoSource(path: path, width: configuration.width, height: configuration.height,
                                                         framesPerSecond: configuration.framesPerSecond, formats: plan.cameraFormats))
            } catch {
                throw MediaPipelineError.unsupportedSource("cannot capture from \(path): \(error)")
            }
        case let .file(path):
            // The stream is read into memory whole: at most 512 MB, and at most a quarter of the
            // machine's memory (a 512 MB Pi Zero 2 W would otherwise be pushed into the OOM killer).
            let limit = Self.fileSourceLimit(physicalMemory: Int(sysconf(Int32(_SC_PHYS_PAGES))) * Int(sysconf(Int32(_SC_PAGESIZE))))
            guard let bytes = StateFiles.readBytes(path, maximumSize: limit) else {
                throw MediaPipelineError.unsupportedSource("cannot read \(path) (missing, unreadable or over \(limit >> 20) MB)")
            }
            do {
                videoInput = .file(path: path, try AnnexBFileSource(stream: bytes, frameRate: configuration.framesPerSecond))
            } catch {
                throw MediaPipelineError.unsupportedSource("\(path) is not a usable Annex-B H.264 stream: \(error)")
            }
        }
        switch videoInput {
        case .testPattern:
            videoDescription = "test-pattern"
            width = configuration.width
            height = configuration.height
        case let .camera(camera):
            videoDescription = camera.description
            width = camera.width
            height = camera.height
        case let .file(path, file):
            videoDescription = "file:\(path) (\(file.accessUnits.count) frames, passthrough)"
            width = file.width
            height = file.height
        }
        encoderPlan = plan
        let encodedProfileLevelID = H264Level.constrainedBaselineProfileLevelID(
            width: width, height: height, framesPerSecond: configuration.framesPerSecond)
        if case let .file(_, file) = videoInput {
            // Passthrough: the stream's own SPS says what it is; the answer must name exactly that.
            h264ProfileLevelID = file.sequenceParameterSet.profileLevelID
            passthroughStream = CameraH264Stream()
        } else if case let .camera(camera) = videoInput, plan == .passthrough {
            passthroughStream = Self.probeParameterSets(camera, logger: logger)
            if let sps = passthroughStream.parsedSequenceParameterSet {
                h264ProfileLevelID = sps.profileLevelID
            } else {
                logger.warning("\(camera.path) sent no SPS within 2 s; answering profile-level-id \(encodedProfileLevelID)")
                h264ProfileLevelID = encodedProfileLevelID
            }
        } else {
            h264ProfileLevelID = encodedProfileLevelID
            passthroughStream = CameraH264Stream()
        }
        switch configuration.audio {
        case .automatic:
            // The first microphone, else the test tone (the embedded default).
            if let device = DeviceListing.microphones().first(where: { $0.source.hasPrefix("alsa:") }),
               let capture = try? Self.openMicrophone(String(device.source.dropFirst("alsa:".count))) {
                audioInput = .microphone(capture)
                audioDescription = device.source
            } else {
                audioInput = .testTone
                audioDescription = "test-tone"
            }
            hasAudio = true
        case .testTone:
            audioInput = .testTone
            audioDescription = "test-tone"
            hasAudio = true
        case .none:
            audioInput = .testTone
            audioDescription = "none"
            hasAudio = false
        case let .alsa(name):
            do {
                audioInput = .microphone(try Self.openMicrophone(name))
            } catch {
                throw MediaPipelineError.unsupportedSource("cannot capture audio from \(name): \(error)")
            }
            audioDescription = "alsa:\(name)"
            hasAudio = true
        }
    }

    var encoderDescription: String {
        counters.withLock { encoderDescription(running: $0.encoder) }
    }

    /// Called with `counters` locked (status()) or from the getter above: never takes the lock.
    private func encoderDescription(running: String) -> String {
        if case .file = videoInput { return "passthrough" }
        return running.isEmpty ? encoderPlan.description : running
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
                _ = try? camera.forceKeyFrame()
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
        "video \(videoDescription) \(width)x\(height)@\(configuration.framesPerSecond) H.264 \(h264ProfileLevelID) \(configuration.bitrateKbps) kb/s (\(encoderDescription)), audio \(audioDescription)"
    }

    /// Starts the video and audio threads; every frame they finish goes to `sink` with `generation`.
    func start(sink: EncodedFrameSink, generation: Int) {
        let configuration = configuration
        let profileLevelID = h264ProfileLevelID
        var started = [DedicatedThread.start(name: "rtcam-video") { [self] in
            runVideo(configuration: configuration, profileLevelID: profileLevelID,
                     deliver: { sink.deliver($0, generation: generation) })
        }]
        if hasAudio {
            started.append(DedicatedThread.start(name: "rtcam-audio") { [self] in
                runAudio(deliver: { sink.deliver($0, generation: generation) })
            })
        }
        threads.withLock { $0 += started }
    }

    func requestKeyframe() { keyframeRequested.store(true, ordering: .relaxed) }

    func setBitrate(kbps: Int) { pendingBitrateKbps.store(kbps, ordering: .relaxed) }

    func setViewersPresent(_ present: Bool) {
        viewersPresent.store(present, ordering: .relaxed)
        viewerArrival.lock()
        viewerArrival.unlock(withValue: present)
    }

    /// Nobody watches: sleeps until someone does, the pipeline stops, or `idleWakeInterval` passed.
    private func sleepWhileUnwatched() {
        if viewerArrival.lock(whenValue: true, timeoutSeconds: idleWakeInterval.millisecondsDouble / 1000) { viewerArrival.unlock() }
    }

    /// Records settings the running pipeline took on without a restart (the bitrate).
    func updateConfiguration(_ configuration: MediaConfiguration) {
        configurationBox.withLockedValue { $0 = configuration }
    }

    /// Ends the pipeline's threads and waits for them (a camera's poll returns within 500 ms, a
    /// frame being encoded is finished), so that when this returns none of them runs or delivers a
    /// frame any more: the daemon closes the sessions and the media socket after, and a new
    /// pipeline may open the same camera. A thread stuck in a device read longer than 2 s is left to end on its own.
    func stop() {
        running.store(false, ordering: .relaxed)
        viewerArrival.lock()
        viewerArrival.unlock(withValue: true)   // wakes a sleeping thread so it sees `running` and ends
        for thread in threads.withLock({ threads in defer { threads = [] }; return threads }) {
            if !thread.join(timeout: .seconds(2)) {
                logger.warning("a media thread did not end within 2 s of stopping (a device read hangs?)")
            }
        }
    }

    /// x264 encoders made since start (tests see the idle release through it).
    var encodersOpened: Int { counters.withLock { $0.encodersOpened } }
    var audioEncodersOpened: Int { counters.withLock { $0.audioEncodersOpened } }

    func status() -> MediaStatus {
        counters.withLock { counters in
            MediaStatus(source: videoDescription, audio: audioDescription, encoder: encoderDescription(running: counters.encoder),
                        width: width, height: height,
                        framesPerSecond: counters.framesPerSecond, bitrateKbps: counters.bitrateKbps,
                        framesEncoded: counters.framesEncoded, keyframesForced: counters.keyframesForced,
                        encoderCPUSeconds: Double(counters.encoderCPUNanoseconds) / 1e9,
                        testPatternCPUSeconds: Double(counters.testPatternCPUNanoseconds) / 1e9,
                        audioEncoderCPUSeconds: Double(counters.audioEncoderCPUNanoseconds) / 1e9,
                        microphone: counters.microphone)
        }
    }

    // MARK: - Threads

    private func runVideo(configuration: MediaConfiguration, profileLevelID: String,
                          deliver: @Sendable (EncodedVideoFrame) -> Void) {
        if case let .file(_, file) = videoInput {
            runFile(file, deliver: deliver)
            return
        }
        // Every path closes the camera when this thread ends (a new pipeline may open it). At function
        // scope: a `defer` inside the `if` below would close it before the x264 path reads a frame.
        defer { if case let .camera(camera) = videoInput { camera.stop() } }
        if case let .camera(camera) = videoInput {
            switch encoderPlan {
            case .passthrough:
                setRunningEncoder(encoderPlan.description)
                runPassthrough(camera, stream: passthroughStream, deliver: deliver)
                return
            case let .hardware(path, _):
                setRunningEncoder(encoderPlan.description)
                if runHardwareEncoder(camera, encoderPath: path, configuration: configuration, deliver: deliver) { return }
                guard camera.pixelFormat != nil, running.load(ordering: .relaxed) else { return }
                logger.warning("falling back to x264 for \(camera.path)")
            case .x264:
                break
            }
        }
        setRunningEncoder("x264")
        // x264 exists while someone watches (and `idleRelease` after): nothing of it, not even the
        // pages of its code, is touched before the first viewer (idle RSS, README Performance).
        var encoder = WhileWatched<X264Encoder>(keepFor: idleRelease)
        let makeEncoder = { [self] () throws -> X264Encoder in
            let current = self.configuration   // the bitrate as last changed
            let made = try X264Encoder(width: width, height: height,
                                       fps: current.framesPerSecond, bitrateKbps: current.bitrateKbps,
                                       profileLevelID: profileLevelID,
                                       keyframeInterval: current.framesPerSecond * current.keyframeIntervalSeconds)
            counters.withLock { $0.encodersOpened += 1 }
            return made
        }
        var refusals = 0
        let encode = { [self] (frame: RawVideoFrame, now: MonotonicTime) in
            let x264: X264Encoder
            do {
                guard let made = try encoder.use(at: now, make: makeEncoder) else { return }   // refused: retried in 5 s
                x264 = made
                refusals = 0
            } catch {
                // Settings x264 refuses show up when the first viewer arrives (nothing is made before).
                refusals += 1
                if refusals == 1 {
                    logger.critical("x264 refused the settings (\(width)x\(height), \(profileLevelID)): \(error); trying again every 5 s")
                } else {
                    logger.error("x264 still refuses the settings: \(error)")
                }
                return
            }
            let force = keyframeRequested.exchange(false, ordering: .relaxed)
            let newBitrate = pendingBitrateKbps.exchange(0, ordering: .relaxed)
            do {
                if newBitrate > 0 {
                    do {
                        try x264.setBitrate(kbps: newBitrate)
                        logger.info("video bitrate now \(newBitrate) kb/s")
                    } catch {
                        logger.error("could not change the bitrate to \(newBitrate) kb/s: \(error)")
                    }
                }
                // x264 takes NV12 and I420 as they are; YUYV is converted to 4:2:0 once (DESIGN.md).
                let input = frame.pixelFormat == .yuyv ? try PixelConversion.i420(fromYUYV: frame) : frame
                guard let encoded = try measuringCPU(\.encoderCPUNanoseconds, { try x264.encode(input, forceKeyframe: force) })
                else { return }
                record(encoded, forced: force, at: now)
                deliver(encoded)
            } catch {
                logger.error("video encoding failed: \(error)")
            }
        }
        let unwatched = { [self] (now: MonotonicTime) in
            if encoder.unwatched(at: now) {
                // x264's freed buffers (and the test pattern's, dropped in the same tick) would stay
                // in this thread's malloc arena; hand the pages back to the system.
                malloc_trim(0)
                logger.debug("nobody has watched for \(idleRelease): x264 closed")
            }
        }
        switch videoInput {
        case .testPattern:
            runTestPattern(configuration: configuration, encode: encode, unwatched: unwatched)
        case let .camera(camera):
            runCamera(camera, encode: encode, unwatched: unwatched)
        case .file:
            break
        }
    }

    /// A pre-encoded stream, looped at the configured rate with no encoder in the process; a
    /// keyframe request jumps to the stream's next IDR.
    private func runFile(_ source: AnnexBFileSource, deliver: @Sendable (EncodedVideoFrame) -> Void) {
        var file = source
        let interval = UInt64(file.frameInterval.nanosecondsClamped)
        var next = MonotonicClock.now().nanoseconds
        while running.load(ordering: .relaxed) {
            DedicatedThread.sleep(until: next)
            let now = MonotonicClock.now()
            next += interval
            if now.nanoseconds > next { next = now.nanoseconds + interval }
            guard viewersPresent.load(ordering: .relaxed) else {
                sleepWhileUnwatched()
                next = MonotonicClock.now().nanoseconds
                continue
            }
            let forced = keyframeRequested.exchange(false, ordering: .relaxed)
            if forced { file.skipToNextKeyframe() }
            let frame = file.nextFrame(captureTime: now)
            record(frame, forced: forced, at: now)
            deliver(frame)
        }
    }

    /// The synthetic camera. Its background (1.4 MB at 720p) is kept like the encoder: while someone
    /// watches and `idleRelease` after; with nobody watching nothing is drawn.
    private func runTestPattern(configuration: MediaConfiguration, encode: (RawVideoFrame, MonotonicTime) -> Void,
                                unwatched: (MonotonicTime) -> Void) {
        var pattern = WhileWatched<TestPatternSource>(keepFor: idleRelease)
        let makePattern = { [width, height] in try TestPatternSource(width: width, height: height) }
        let interval = UInt64(1_000_000_000 / configuration.framesPerSecond)
        var next = MonotonicClock.now().nanoseconds
        var index: UInt64 = 0
        while running.load(ordering: .relaxed) {
            DedicatedThread.sleep(until: next)
            let now = MonotonicClock.now()
            // Freshest frame wins: if encoding fell behind, skip the missed slots instead of queueing.
            next += interval
            if now.nanoseconds > next { next = now.nanoseconds + interval }
            index += 1
            guard viewersPresent.load(ordering: .relaxed) else {
                pattern.unwatched(at: now)   // first: the encoder's release trims the heap after both
                unwatched(now)
                sleepWhileUnwatched()        // a wake-up a second, not one a frame
                next = MonotonicClock.now().nanoseconds
                continue
            }
            let source: TestPatternSource
            do {
                guard let made = try pattern.use(at: now, make: makePattern) else { continue }
                source = made
            } catch {
                logger.error("test pattern failed: \(error); trying again in 5 s")
                continue
            }
            encode(measuringCPU(\.testPatternCPUNanoseconds) { source.frame(at: now, index: index) }, now)
        }
    }

    /// Frames from the camera as the driver paces them; a camera that goes away (USB unplug) is
    /// reported and reopened when it comes back, without restarting the daemon.
    private func runCamera(_ camera: V4L2VideoSource, encode: (RawVideoFrame, MonotonicTime) -> Void,
                           unwatched: (MonotonicTime) -> Void) {
        while running.load(ordering: .relaxed) {
            do {
                try camera.withNextFrame(timeoutMilliseconds: 500) { frame in
                    let now = MonotonicClock.now()
                    if viewersPresent.load(ordering: .relaxed) {
                        encode(frame, now)
                    } else {
                        unwatched(now)
                    }
                }
            } catch {
                waitForCameraToReturn(camera, after: error)
            }
        }
    }

    private func waitForCameraToReturn(_ camera: V4L2VideoSource, after error: any Error) {
        logger.error("camera \(camera.path) stopped: \(error); waiting for it to come back")
        while running.load(ordering: .relaxed) {
            DedicatedThread.sleep(until: (MonotonicClock.now() + .seconds(1)).nanoseconds)
            if camera.tryReopen() {
                logger.notice("camera \(camera.path) is back")
                requestKeyframe()
                return
            }
        }
    }

    /// Runs `body` and adds the CPU time the calling thread spent in it to `counter` (/api/status).
    private func measuringCPU<Result>(_ counter: WritableKeyPath<Counters, UInt64>,
                                      _ body: () throws -> Result) rethrows -> Result {
        let before = MonotonicClock.threadCPUNanoseconds()
        defer {
            let used = MonotonicClock.threadCPUNanoseconds() &- before
            counters.withLock { $0[keyPath: counter] &+= used }
        }
        return try body()
    }

    private func setRunningEncoder(_ description: String) {
        counters.withLock { $0.encoder = description }
    }

    /// The zero-copy chain of a Raspberry Pi: each camera buffer goes to the V4L2 M2M encoder by
    /// DMABUF import (or a copy, if the encoder refuses the import) and back to the camera once the
    /// encoder let go of it. Returns true when stopped, false when the encoder failed (the caller
    /// falls back to x264 on the same camera).
    private func runHardwareEncoder(_ camera: V4L2VideoSource, encoderPath: String, configuration: MediaConfiguration,
                                    deliver: @Sendable (EncodedVideoFrame) -> Void) -> Bool {
        let encoder = V4L2M2MEncoder(configuration: V4L2EncoderConfiguration(
            path: encoderPath, width: UInt32(width), height: UInt32(height), inputPixelFormat: camera.negotiatedFormat,
            inputBytesPerLine: camera.bytesPerLine, framesPerSecond: UInt32(configuration.framesPerSecond),
            bitrate: Int32(clamping: configuration.bitrateKbps * 1000),
            keyFrameInterval: Int32(clamping: configuration.framesPerSecond * configuration.keyframeIntervalSeconds),
            profile: .constrainedBaseline, level: Self.v4l2Level(h264ProfileLevelID), repeatSequenceHeader: true,
            inputMemory: .dmabuf))
        do {
            try encoder.start()
        } catch {
            logger.error("hardware encoder \(encoderPath) failed to start: \(error)")
            return false
        }
        defer { encoder.stop() }
        if !encoder.statistics.rejectedControls.isEmpty {
            logger.notice("\(encoderPath) refused controls \(encoder.statistics.rejectedControls.keys.map(\.description).sorted()); using its defaults for them")
        }
        logger.info("hardware encoder \(encoderPath): \(camera.negotiatedFormat) \(width)x\(height) in, H.264 out")
        var encoderError: V4L2Error?
        var heldInputs = 0
        while running.load(ordering: .relaxed), encoderError == nil {
            do {
                try camera.withNextCapturedFrame(timeoutMilliseconds: 500) { frame in
                    guard viewersPresent.load(ordering: .relaxed) else { return }
                    let force = keyframeRequested.exchange(false, ordering: .relaxed)
                    let newBitrate = pendingBitrateKbps.exchange(0, ordering: .relaxed)
                    do throws(V4L2Error) {
                        if newBitrate > 0 {
                            try encoder.setBitrate(Int32(clamping: newBitrate * 1000))
                            logger.info("video bitrate now \(newBitrate) kb/s")
                        }
                        let result = try encoder.encodeWaiting(frame.encoderInput, forceKeyFrame: force)
                        if !result.inputReleased {
                            heldInputs += 1
                            if heldInputs == 1 || heldInputs % 100 == 0 {
                                logger.warning("\(encoderPath) still held a camera buffer after 200 ms (\(heldInputs) times)")
                            }
                        }
                        for coded in result.frames {
                            let encoded = EncodedVideoFrame(accessUnit: coded.data, isKeyframe: coded.isKeyFrame,
                                                            captureTime: coded.captureTime == .zero ? frame.captureTime : coded.captureTime,
                                                            width: width, height: height)
                            record(encoded, forced: force && coded.isKeyFrame, at: MonotonicClock.now())
                            deliver(encoded)
                        }
                    } catch {
                        encoderError = error
                    }
                }
            } catch {
                waitForCameraToReturn(camera, after: error)
            }
        }
        if let encoderError {
            logger.error("hardware encoder \(encoderPath) failed: \(encoderError)")
            return false
        }
        return true
    }

    /// The camera's own H.264 to the viewers, with SPS/PPS put in front of every IDR; keyframe
    /// requests become the camera's FORCE_KEY_FRAME control, or a stream restart (at most one in
    /// 2 s) on cameras without it.
    private func runPassthrough(_ camera: V4L2VideoSource, stream initial: CameraH264Stream,
                                deliver: @Sendable (EncodedVideoFrame) -> Void) {
        var stream = initial
        var lastRestart: MonotonicTime?
        var bitrateControlWorks = true
        while running.load(ordering: .relaxed) {
            do {
                let now = MonotonicClock.now()
                if keyframeRequested.load(ordering: .relaxed), lastRestart.map({ now - $0 >= .seconds(2) }) ?? true {
                    keyframeRequested.store(false, ordering: .relaxed)
                    let outcome = try camera.forceKeyFrame()
                    if outcome == .streamRestarted { lastRestart = now }
                    logger.debug("asked \(camera.path) for an IDR: \(outcome)")
                }
                let newBitrate = pendingBitrateKbps.exchange(0, ordering: .relaxed)
                if newBitrate > 0, bitrateControlWorks {
                    do {
                        try camera.setEncoderBitrate(bitsPerSecond: Int32(clamping: newBitrate * 1000))
                    } catch {
                        if error == .deviceGone { throw error }
                        bitrateControlWorks = false
                        logger.notice("\(camera.path) has no bitrate control (\(error)): the camera keeps its own rate")
                    }
                }
                try camera.withNextCapturedFrame(timeoutMilliseconds: 500) { frame in
                    guard let encoded = stream.frame(fromBuffer: frame.data, captureTime: frame.captureTime,
                                                     width: width, height: height),
                          viewersPresent.load(ordering: .relaxed) else { return }
                    if encoded.isKeyframe { logger.debug("\(camera.path): IDR, \(encoded.accessUnit.count) bytes") }
                    record(encoded, forced: false, at: MonotonicClock.now())
                    deliver(encoded)
                }
            } catch {
                waitForCameraToReturn(camera, after: error)
            }
        }
    }

    /// The V4L2 level control's value for a profile-level-id's level_idc.
    static func v4l2Level(_ profileLevelID: String) -> V4L2H264Level {
        V4L2H264Level(levelIDC: Int(profileLevelID.suffix(2), radix: 16) ?? 0x1F)
    }

    /// ALSA capture for Opus: 48 kHz mono S16 (the plug layer converts), one 20 ms period per Opus
    /// frame (RFC 7587 §4.2), blocking reads on the audio thread.
    static func openMicrophone(_ device: String) throws -> ALSACapture {
        try ALSACapture(configuration: ALSACaptureConfiguration(device: device, sampleRate: 48_000, channels: 1,
                                                                periodMilliseconds: 20))
    }

    /// Opus for the audio thread, made when someone listens and kept like x264 (`WhileWatched`).
    private func makeOpusEncoder() throws -> OpusEncoder {
        let made = try OpusEncoder(channels: 1, bitrate: 32_000)
        counters.withLock { $0.audioEncodersOpened += 1 }
        return made
    }

    private func runAudio(deliver: @Sendable (EncodedAudioFrame) -> Void) {
        if case let .microphone(capture) = audioInput {
            runMicrophone(capture, deliver: deliver)
            return
        }
        let tone = TestToneSource(channels: 1)
        var encoder = WhileWatched<OpusEncoder>(keepFor: idleRelease)
        let frameSamples = 960  // 20 ms at 48 kHz (RFC 7587 §4.2)
        var sampleIndex = TestToneSource.sampleIndex(at: MonotonicClock.now())
        while running.load(ordering: .relaxed) {
            guard viewersPresent.load(ordering: .relaxed) else {
                encoder.unwatched(at: MonotonicClock.now())
                sleepWhileUnwatched()
                sampleIndex = TestToneSource.sampleIndex(at: MonotonicClock.now())  // the tone is a function of time
                continue
            }
            let captureTime = TestToneSource.time(ofSample: sampleIndex)
            DedicatedThread.sleep(until: (captureTime + .milliseconds(20)).nanoseconds)
            let now = MonotonicClock.now()
            if now - captureTime > .milliseconds(200) {
                sampleIndex = TestToneSource.sampleIndex(at: now)  // fell far behind: resynchronise
                continue
            }
            let pcm = measuringCPU(\.audioEncoderCPUNanoseconds) { tone.samples(startingAt: sampleIndex, count: frameSamples) }
            sampleIndex += Int64(frameSamples)
            do {
                guard let opus = try encoder.use(at: now, make: makeOpusEncoder) else { continue }
                deliver(try measuringCPU(\.audioEncoderCPUNanoseconds) { try opus.encode(pcm, captureTime: captureTime) })
            } catch {
                logger.error("audio encoding failed: \(error)")
            }
        }
    }

    /// Reads the microphone period by period (always, so the device never overruns) and encodes
    /// while someone watches; a device that fails is reopened every second.
    private func runMicrophone(_ first: ALSACapture, deliver: @Sendable (EncodedAudioFrame) -> Void) {
        var encoder = WhileWatched<OpusEncoder>(keepFor: idleRelease)
        var capture: ALSACapture? = first
        let device = first.configuration.device
        var closedDevicesStatistics = ALSACaptureStatistics()
        while running.load(ordering: .relaxed) {
            guard let current = capture else {
                DedicatedThread.sleep(until: (MonotonicClock.now() + .seconds(1)).nanoseconds)
                capture = try? Self.openMicrophone(device)
                if capture != nil { logger.notice("microphone \(device) is back") }
                continue
            }
            do {
                let chunk = try current.readPeriod()
                counters.withLock { $0.microphone = closedDevicesStatistics.adding(current.statistics) }
                guard viewersPresent.load(ordering: .relaxed) else {
                    encoder.unwatched(at: chunk.captureTime)
                    continue
                }
                guard chunk.samples.count == 960 else { continue }
                // The encoder's own errors are not the microphone's: they must not close the device.
                do {
                    guard let opus = try encoder.use(at: chunk.captureTime, make: makeOpusEncoder) else { continue }
                    deliver(try measuringCPU(\.audioEncoderCPUNanoseconds) {
                        try opus.encode(chunk.samples, captureTime: chunk.captureTime)
                    })
                } catch {
                    logger.error("audio encoding failed: \(error)")
                }
            } catch {
                logger.error("microphone \(device) stopped: \(error); waiting for it to come back")
                closedDevicesStatistics = closedDevicesStatistics.adding(current.statistics)
                current.close()
                capture = nil
            }
        }
        capture?.close()
    }

    private func record(_ frame: EncodedVideoFrame, forced: Bool, at now: MonotonicTime) {
        counters.withLock { counters in
            counters.framesEncoded += 1
            if forced { counters.keyframesForced += 1 }
            let start = counters.windowStart ?? now
            counters.windowStart = start
            counters.windowFrames += 1
            counters.windowBytes += frame.accessUnit.count
            let elapsed = now - start
            if elapsed >= .seconds(1) {
                let seconds = elapsed.millisecondsDouble / 1000
                counters.framesPerSecond = Double(counters.windowFrames - 1) / seconds
                counters.bitrateKbps = Double(counters.windowBytes) * 8 / 1000 / seconds
                counters.windowStart = now
                counters.windowFrames = 1
                counters.windowBytes = frame.accessUnit.count
            }
        }
    }
}

/// Where the audio thread's sound comes from.
enum AudioInput: @unchecked Sendable {
    case testTone
    case microphone(ALSACapture)
}

/// Where the video thread's raw frames come from.
enum VideoInput: @unchecked Sendable {
    case testPattern
    case camera(V4L2VideoSource)
    case file(path: String, AnnexBFileSource)
}

enum MediaPipelineError: Error, CustomStringConvertible {
    case unsupportedSource(String)

    var description: String {
        switch self {
        case let .unsupportedSource(reason): return reason
        }
    }
}
