#if canImport(Glibc)
import Glibc
#endif
import CongestionControl
import JPEG
import MediaSources
import RTCBase
import SystemSupport
import V4L2
import X264

/// One video input, run on the pipeline's video thread until `controls.isRunning` goes false: each
/// finished frame goes to `deliver` (the hub, from this thread). One type per input kind.
protocol VideoProducer: Sendable {
    /// What /api/status and the log call the input.
    var description: String { get }
    var width: Int { get }
    var height: Int { get }
    func run(_ controls: MediaThreadControls, deliver: (EncodedVideoFrame) -> Void)
}

/// What the producer needs of the configuration while it runs (x264's bitrate is the last one set).
typealias CurrentConfiguration = @Sendable () -> MediaConfiguration

/// x264 for raw pictures (the test pattern's, a camera's), made while someone watches and
/// `idleRelease` after: nothing of it, not even the pages of its code, is touched before the first
/// viewer (idle RSS, README Performance). Lives on the video thread.
///
/// It also adapts to the CPU (EncoderLoadAdaptation): each frame's time on this thread, from the
/// moment the producer had it to x264's output (wall time: a cgroup quota's throttling counts), and
/// the source's frames it was too busy for, decide the size x264 encodes (the picture is scaled
/// down before x264) or the rate it is fed, per `degradation`. A change makes a new x264 at the
/// new format, whose first picture is an IDR.
struct X264Stage {
    let width: Int
    let height: Int
    let profileLevelID: String
    let configuration: CurrentConfiguration
    private var encoder: WhileWatched<X264Encoder>
    private var refusals = 0
    /// The encoder the bitrate below belongs to (a new one starts from the settings and the cap).
    private var x264Made: X264Encoder?
    private var bitrate = EncoderBitrate(configuredKbps: 0)
    private var adaptation: EncoderLoadAdaptation
    private var lastSequenceNumber: UInt64?
    private var framesSkipped = 0
    private var paused = false
    /// The process's CPU limit (a cgroup quota, in cores; nil: none), read again every 10 s (the
    /// process may be moved, `systemctl set-property` may change it), and its CPU time when last
    /// measured: its share of the limit goes to the adaptation once a second.
    private var cpuLimitCores: Double?
    private var cpuLimitReadAt: MonotonicTime?
    private var lastProcessCPU: (at: MonotonicTime, nanoseconds: UInt64)?
    /// The bitrate last asked for while running (congestion control, the settings): an x264 made
    /// for a new format starts at it, not at the configured one.
    private var requestedBitrateKbps: Int?
    /// The pictures are full-range BT.601 (a camera's JPEGs decoded): x264's VUI says so.
    let fullRangeBT601: Bool
    /// The second, smaller encoding for viewers on slow links (issue 24; ReducedLayerPolicy), made
    /// while the hub wants it and freed when it does not.
    private var reduced = ReducedLayerStage()
    /// The full encoder's periodic IDRs (issue 24): x264 makes none of its own (but with intra
    /// refresh, whose sweep is its keyint); they are forced here, held while a viewer's link is in
    /// a congestion episode (the hub's `setViewerLinkCongested`). Requested keyframes stay at once.
    private var keyframes = KeyframeSchedule(interval: 1)
    /// A new size's encoder was made in this frame: freed heap goes back after the frame.
    private var releasesFreedHeapAfterFrame = false
    /// RTCAM_DEBUG_CPU_STEPS=SECONDS (interop tests of what a CPU step costs the viewers, whatever
    /// the machine's load): every SECONDS the adaptation steps 1, 2, 1, 0 down the ladder and back,
    /// and only then (the load's own steps would make the sizes a matter of chance).
    private let debugStepEvery = Environment.value("RTCAM_DEBUG_CPU_STEPS").flatMap { Int($0) }.map { Duration.seconds($0) }
    private var debugSteps: (next: MonotonicTime, count: Int)?
    /// RTCAM_X264_THREADS=N (benchmarks' A/B, `bench.py latency --variants`): x264's sliced threads
    /// for the full encoding (1 to 4; 1 when unset). N threads code N slices of a picture at once:
    /// less time from capture to the last packet, N slices' headers more per picture.
    private let x264Threads = Environment.value("RTCAM_X264_THREADS").flatMap { Int($0) }.map { min(max($0, 1), 4) } ?? 1
    /// A YUYV camera's pictures converted to I420, and the pictures scaled down for the CPU
    /// adaptation's size: reused frame to frame (FrameBufferPool), given back with x264.
    private let convertedFrames = FrameBufferPool()
    private let scaledFrames = FrameBufferPool()

    init(width: Int, height: Int, profileLevelID: String, idleRelease: Duration, fullRangeBT601: Bool = false,
         adaptationThresholds: EncoderLoadAdaptation.Thresholds = EncoderLoadAdaptation.Thresholds(),
         configuration: @escaping CurrentConfiguration) {
        self.fullRangeBT601 = fullRangeBT601
        self.width = width
        self.height = height
        self.profileLevelID = profileLevelID
        self.configuration = configuration
        encoder = WhileWatched(keepFor: idleRelease)
        let current = configuration()
        adaptation = EncoderLoadAdaptation(configured: EncodedFormat(width: width, height: height, framesPerSecond: current.framesPerSecond),
                                           preference: current.degradation,
                                           thresholds: debugStepEvery == nil ? adaptationThresholds : .onlyAskedSteps)
    }

    /// Encodes `frame` (YUYV converted to 4:2:0 first: DESIGN.md), with a keyframe when one was asked
    /// for and the bitrate as last changed, and gives it to `deliver`; nothing when x264 buffered it
    /// or refused its settings, or when the adapted frame rate leaves this frame out. `now`: when the
    /// producer had the frame. While the hub wants the reduced encoding, the same picture at half the
    /// size each side is encoded after the full one is delivered (the fast viewers do not wait for
    /// it) and delivered too; its time counts in the CPU adaptation's like the full encoder's.
    mutating func encode(_ frame: RawVideoFrame, at now: MonotonicTime, _ controls: MediaThreadControls,
                         deliver: (EncodedVideoFrame) -> Void) {
        paused = false
        // Frames the source had while this thread was busy (a sequence gap) are the encoder falling behind.
        if let last = lastSequenceNumber, frame.sequenceNumber > last + 1 {
            let gap = Int(min(frame.sequenceNumber - last - 1, 30))
            framesSkipped += gap
            for _ in 0 ..< gap { adaptation.frameSkipped(at: now) }
        }
        lastSequenceNumber = frame.sequenceNumber
        if let every = debugStepEvery {
            let steps = debugSteps ?? (now + every, 0)
            debugSteps = steps
            if now >= steps.next {
                let level = [1, 2, 1, 0][steps.count % 4]
                debugSteps = (now + every, steps.count + 1)
                if let change = adaptation.step(to: level, at: now, reason: "RTCAM_DEBUG_CPU_STEPS") {
                    controls.logger.notice("encoder load: \(change.from) -> \(change.to): \(change.reason)")
                }
            }
        }
        let format = adaptation.current
        guard adaptation.admits(frameAt: frame.captureTime) else { return }
        var replacesAnotherSize = false
        if let running = encoder.resource,
           running.width != format.width || running.height != format.height || running.frameRate != format.framesPerSecond {
            encoder.discard()
            replacesAnotherSize = running.width != format.width || running.height != format.height
        }
        let x264: X264Encoder
        do {
            let profileLevelID = profileLevelID
            let configuration = configuration
            let requestedBitrateKbps = requestedBitrateKbps
            let fullRangeBT601 = fullRangeBT601
            let x264Threads = x264Threads
            guard let made = try encoder.use(at: now, make: { () throws -> X264Encoder in
                let current = configuration()   // the bitrate as last changed
                let made = try X264Encoder(width: format.width, height: format.height, fps: format.framesPerSecond,
                                           bitrateKbps: EncoderBitrate(configuredKbps: requestedBitrateKbps ?? current.bitrateKbps,
                                                                        capKbps: controls.bitrateCap).effectiveKbps, profileLevelID: profileLevelID,
                                           keyframeInterval: format.framesPerSecond * current.keyframeIntervalSeconds,
                                           threads: x264Threads,
                                           vbvBufferMilliseconds: X264Encoder.vbvBufferMilliseconds(framesPerSecond: format.framesPerSecond,
                                                                                                    intraRefresh: current.intraRefresh),
                                           intraRefresh: current.intraRefresh, callerSchedulesKeyframes: true,
                                           fullRangeBT601: fullRangeBT601)
                controls.counters.withLock { $0.encodersOpened += 1 }
                return made
            }) else { return }   // refused a moment ago: tried again in 5 s
            if x264Made !== made {
                x264Made = made   // the last reference to the one it replaces
                // CPU adaptation changed the size: the old encoder's blocks under the mmap threshold
                // (fixed at 128 KiB, ProcessMemory.fixMmapThreshold; its picture planes above it
                // went back with their mappings) are free chunks in this thread's arena that the new
                // size does not fit as they are; their pages go back (issue 20: 1.1 MB stayed in the
                // hour's minute of three sizes while the threshold was glibc's dynamic one), once
                // this frame of both layers is out (the step's IDR does not wait for it).
                releasesFreedHeapAfterFrame = replacesAnotherSize
                reduced.fullEncoderReplaced(at: now)
                keyframeHoldEnds(at: now, controls)   // the new encoder's first picture is an IDR
                keyframes.restart(interval: made.keyframeInterval)
                bitrate = EncoderBitrate(configuredKbps: requestedBitrateKbps ?? configuration().bitrateKbps,
                                         capKbps: controls.bitrateCap)
            }
            x264 = made
            refusals = 0
        } catch {
            // Settings x264 refuses show up when the first viewer arrives (nothing is made before).
            refusals += 1
            if refusals == 1 {
                controls.logger.critical("x264 refused the settings (\(format), \(profileLevelID)): \(error); trying again every 5 s")
            } else {
                controls.logger.error("x264 still refuses the settings: \(error)")
            }
            return
        }
        let requested = controls.takeKeyframeRequest()
        let holdsBefore = keyframes.holds
        let scheduled = x264.callerSchedulesKeyframes
            && keyframes.keyframeDue(congested: controls.isViewerLinkCongested, now: now)
        if keyframes.holds != holdsBefore { controls.setPeriodicKeyframesHeld(keyframes.holds) }
        let force = requested || scheduled
        if scheduled, let since = keyframes.heldSince {
            controls.logger.debug("periodic IDR made \(now - since) late: a viewer's link was congested")
        }
        let configuredChange = controls.takeBitrateChange()
        if let configuredChange { requestedBitrateKbps = configuredChange }
        if let kbps = bitrate.takeChange(configured: configuredChange, cap: controls.bitrateCap) {
            do {
                try x264.setBitrate(kbps: kbps)
                if configuredChange != nil || kbps == bitrate.configuredKbps {
                    controls.logger.info("video bitrate now \(kbps) kb/s")
                } else {
                    controls.logger.debug("video bitrate now \(kbps) kb/s (the viewers' bandwidth estimate)")
                }
            } catch {
                controls.logger.error("could not change the bitrate to \(kbps) kb/s: \(error)")
            }
        }
        let encoded: EncodedVideoFrame?
        let planar: RawVideoFrame
        do {
            planar = frame.pixelFormat == .yuyv ? try PixelConversion.i420(fromYUYV: frame, pool: convertedFrames) : frame
            encoded = try controls.measuringCPU(\.encoderCPUNanoseconds) {
                let input = try PictureScaling.i420(scaling: planar, toWidth: format.width, height: format.height,
                                                    pool: scaledFrames)
                return try x264.encode(input, forceKeyframe: force)
            }
        } catch {
            controls.logger.error("video encoding failed: \(error)")
            return
        }
        let done = MonotonicClock.now()
        if let encoded {
            if encoded.isKeyframe { keyframeHoldEnds(at: now, controls) }
            keyframes.pictureMade(isKeyframe: encoded.isKeyframe)
            controls.record(encoded, forced: requested, at: now)
            deliver(encoded)
        }
        // The reduced encoding's time (not the full frame's delivery) is added to the frame's.
        let reducedStart = MonotonicClock.now()
        if let smaller = reduced.encode(planar, fullFormat: format, at: now, profileLevelID: profileLevelID,
                                        keyframeInterval: format.framesPerSecond * configuration().keyframeIntervalSeconds,
                                        fullRangeBT601: fullRangeBT601, controls) {
            deliver(smaller)
        }
        if releasesFreedHeapAfterFrame {
            releasesFreedHeapAfterFrame = false
            ProcessMemory.releaseFreedHeap()
        }
        let reducedTime = MonotonicClock.now() - reducedStart
        measureProcessLoad(at: done)
        if let change = adaptation.frameEncoded(processing: done - now + reducedTime, lag: done - frame.captureTime,
                                                at: done + reducedTime) {
            controls.logger.notice("encoder load: \(change.from) -> \(change.to) (configured \(adaptation.configured), degradation \(adaptation.preference.rawValue)): \(change.reason)")
        }
        controls.setAdaptation(status)
    }

    /// An IDR is made now: a periodic one that waited for a congested link waited this long (/api/status).
    private func keyframeHoldEnds(at now: MonotonicTime, _ controls: MediaThreadControls) {
        if let since = keyframes.heldSince { controls.periodicKeyframeHoldEnded(after: now - since) }
    }

    /// Steps the CPU adaptation to ladder step `level` before the next frame (tests, benchmarks).
    mutating func stepAdaptation(to level: Int, at now: MonotonicTime) {
        _ = adaptation.step(to: level, at: now, reason: "asked for")
    }

    private mutating func measureProcessLoad(at now: MonotonicTime) {
        if cpuLimitReadAt.map({ now - $0 >= .seconds(10) }) ?? true {
            cpuLimitReadAt = now
            let limit = CgroupCPULimit.current()
            if limit == nil, cpuLimitCores != nil { adaptation.processLoad(share: nil) }
            cpuLimitCores = limit
        }
        guard let cpuLimitCores else { return }
        let cpu = CgroupCPULimit.processCPUNanoseconds()
        guard let last = lastProcessCPU else {
            lastProcessCPU = (now, cpu)
            return
        }
        let elapsed = now - last.at
        guard elapsed >= .seconds(1) else { return }
        adaptation.processLoad(share: Double(cpu &- last.nanoseconds) / 1e9 / (elapsed.millisecondsDouble / 1000) / cpuLimitCores)
        lastProcessCPU = (now, cpu)
    }

    var status: EncoderAdaptationStatus {
        EncoderAdaptationStatus(preference: adaptation.preference, configured: adaptation.configured, current: adaptation.current,
                                reason: adaptation.reason, changes: adaptation.changes, encodeUsage: adaptation.usage,
                                framesSkipped: framesSkipped, cpuLimitCores: cpuLimitCores, cpuLimitUsed: adaptation.processShare,
                                captureToEncoded: adaptation.captureToEncoded)
    }

    /// Nobody watches: x264 goes once nobody has for `idleRelease`.
    mutating func unwatched(at now: MonotonicTime, _ controls: MediaThreadControls) {
        reduced.close(controls)
        if !paused {
            paused = true
            adaptation.pause()
            lastSequenceNumber = nil
            lastProcessCPU = nil
            controls.setAdaptation(status)
        }
        if encoder.unwatched(at: now) {
            convertedFrames.releaseKept()
            scaledFrames.releaseKept()
            // x264's freed buffers (and the test pattern's, dropped in the same tick) would stay in
            // this thread's malloc arena; hand the pages back to the system.
            ProcessMemory.releaseFreedHeap()
            controls.logger.debug("nobody has watched for \(controls.idleRelease): x264 closed")
        }
    }
}

/// The reduced encoding's format beside the full one's CPU adaptation steps (issue 24), on the
/// caller's clock. Its rule: half the full picture each side, half its rate from 20 fps
/// (ReducedLayerStage.size, .frameInterval).
/// - A running reduced encoder is kept on a step down while it stays clearly smaller than the full
///   picture (at most 4/5 of its width) and not smaller than the rule: a new x264 is a new IDR on
///   the slow link, saved where the picture would hardly change.
/// - On a step up it follows the rule (it is not left smaller than half the full picture), at
///   the IDR it would send anyway: its periodic one (at most a keyframe interval later) or one a
///   viewer asked for. So growing costs the slow link no extra keyframe.
/// - It never changes in the frame interval the full encoder was replaced in: a change waits
///   `stagger` after that, so the two new encoders' opening and IDRs (the CPU step's cost, and
///   each layer's biggest frames) fall in different frames, and a viewer never sees both at once.
struct ReducedLayerSizing: Sendable {
    /// A fifth of a second: several frames of either layer, and little time at a size off the rule.
    static let stagger: Duration = .milliseconds(200)
    private var fullReplacedAt: MonotonicTime?

    /// The full encoder was replaced at `now`.
    mutating func fullEncoderReplaced(at now: MonotonicTime) { fullReplacedAt = now }

    /// What the reduced encoder should be at `now` beside `full` (`running`: what it is, nil: none;
    /// an answer other than `running` means a new one). `keyframeDue`: its next picture is an IDR
    /// anyway (periodic or asked for).
    func format(running: EncodedFormat?, full: EncodedFormat, keyframeDue: Bool = true, at now: MonotonicTime) -> EncodedFormat {
        let size = ReducedLayerStage.size(ofFull: full)
        let wanted = EncodedFormat(width: size.width, height: size.height,
                                   framesPerSecond: max(1, full.framesPerSecond / ReducedLayerStage.frameInterval(ofFull: full.framesPerSecond)))
        guard let running else { return wanted }   // the first one: a slow viewer waits for it
        if running.framesPerSecond == wanted.framesPerSecond,
           running.width * 5 <= full.width * 4, running.width >= wanted.width {
            return running
        }
        if let fullReplacedAt, now - fullReplacedAt < Self.stagger { return running }
        let grows = running.framesPerSecond == wanted.framesPerSecond && running.width < wanted.width
        return grows && !keyframeDue ? running : wanted
    }
}

/// The reduced encoding (issue 24): a second x264 at half the full encoding's size each side
/// (the full one's as the CPU adaptation has it now) and half its frame rate from 20 fps up, at
/// the bitrate the hub gives, made with its first picture an IDR when the hub asks for it and
/// closed (its memory freed) when it stops.
///
/// Half the rate: a slow link's few hundred kb/s go further on 15 pictures a second than on 30
/// (the issue asks 10 for it), and the second encoding costs half the CPU, which the full one's
/// size would otherwise pay for through the CPU adaptation (its time counts in it).
struct ReducedLayerStage {
    private var encoder: X264Encoder?
    private var bitrateKbps = 0
    /// Counts the full encoding's frames: the reduced one takes every `frameInterval`-th.
    private var frameCount = 0
    /// When it changes size beside the full encoding's CPU steps.
    private var sizing = ReducedLayerSizing()
    /// Its periodic IDRs, forced here as the full encoder's are (x264 makes none of its own): held
    /// while one of its own viewers' links is in a congestion episode (the hub's
    /// `setViewerLinksCongested(reduced:)`). They are on slow links, where an IDR made as the link's
    /// queue drains waits behind it.
    private var keyframes = KeyframeSchedule(interval: 1)

    /// The full encoder was replaced at `now` (a CPU adaptation step): its IDR goes out in this
    /// frame, so a size change of this one waits (ReducedLayerSizing.stagger).
    mutating func fullEncoderReplaced(at now: MonotonicTime) { sizing.fullEncoderReplaced(at: now) }
    /// The pictures scaled to its size, reused frame to frame; freed with its x264.
    private let scaledFrames = FrameBufferPool()

    /// Half of each side, even, and at least 64x36 (smaller is no picture at all).
    static func size(ofFull format: EncodedFormat) -> (width: Int, height: Int) {
        (max(64, format.width / 4 * 2), max(36, format.height / 4 * 2))
    }

    /// Every second picture from 20 fps up (never under 10 fps), else every one.
    static func frameInterval(ofFull framesPerSecond: Int) -> Int { framesPerSecond >= 20 ? 2 : 1 }

    /// Its VBV buffer: a keyframe (the one a viewer switches at, or a new encoder's) is at most
    /// 200 ms of its bitrate, so on the slow link it is not a freeze (at 500 kb/s ~120 ms in all).
    static let vbvBufferMilliseconds = 200

    /// `picture` (I420/NV12 at the source's size) as the reduced layer's next frame, or nil (not
    /// wanted, x264 refused).
    mutating func encode(_ picture: RawVideoFrame, fullFormat: EncodedFormat, at now: MonotonicTime, profileLevelID: String,
                         keyframeInterval: Int, fullRangeBT601: Bool, _ controls: MediaThreadControls) -> EncodedVideoFrame? {
        guard let kbps = controls.reducedLayerBitrate else {
            close(controls)
            return nil
        }
        let interval = Self.frameInterval(ofFull: fullFormat.framesPerSecond)
        let running = encoder.map { EncodedFormat(width: $0.width, height: $0.height, framesPerSecond: $0.frameRate) }
        // A size change waits for an IDR due anyway (and for a held one's end: a new encoder's
        // first picture is an IDR too).
        let congested = controls.isReducedLayerLinkCongested
        let keyframeDue = controls.reducedKeyframeIsRequested || keyframes.isDue(congested: congested, now: now)
        let wanted = sizing.format(running: running, full: fullFormat, keyframeDue: keyframeDue, at: now)
        let (width, height, framesPerSecond) = (wanted.width, wanted.height, wanted.framesPerSecond)
        if running != nil, wanted != running {
            encoder = nil
            frameCount = 0
        }
        // A new encoder takes the next picture (its IDR goes out at once); then every interval-th.
        defer { frameCount += 1 }
        guard encoder == nil || frameCount % interval == 0 else { return nil }
        let x264: X264Encoder
        if let running = encoder {
            x264 = running
            if kbps != bitrateKbps {
                do {
                    try x264.setBitrate(kbps: kbps)
                    bitrateKbps = kbps
                } catch {
                    controls.logger.error("reduced layer: could not change the bitrate to \(kbps) kb/s: \(error)")
                }
            }
        } else {
            do {
                x264 = try X264Encoder(width: width, height: height, fps: framesPerSecond, bitrateKbps: kbps,
                                       profileLevelID: profileLevelID, keyframeInterval: max(1, keyframeInterval / interval),
                                       vbvBufferMilliseconds: Self.vbvBufferMilliseconds,
                                       callerSchedulesKeyframes: true, fullRangeBT601: fullRangeBT601)
            } catch {
                controls.logger.error("reduced layer: x264 refused \(width)x\(height) at \(kbps) kb/s: \(error)")
                return nil
            }
            controls.logger.info("reduced layer: x264 \(width)x\(height)@\(framesPerSecond) at \(kbps) kb/s")
            frameCount = 0
            controls.counters.withLock { $0.encodersOpened += 1 }
            encoder = x264
            bitrateKbps = kbps
            keyframes.restart(interval: x264.keyframeInterval)
            _ = controls.takeReducedKeyframeRequest()   // its first picture is an IDR anyway
        }
        let holdsBefore = keyframes.holds
        let scheduled = keyframes.keyframeDue(congested: congested, now: now)
        if keyframes.holds != holdsBefore { controls.counters.withLock { $0.reducedLayerKeyframesHeld = keyframes.holds } }
        if scheduled, let since = keyframes.heldSince {
            controls.logger.debug("reduced layer: periodic IDR made \(now - since) late: one of its viewers' links was congested")
        }
        let force = controls.takeReducedKeyframeRequest() || scheduled
        do {
            // Counted in the encoders' CPU and apart (what the second encoding costs: README, Weak links).
            let encoded = try controls.measuringCPU(\.reducedLayerCPUNanoseconds) {
                try controls.measuringCPU(\.encoderCPUNanoseconds) {
                    let input = try PictureScaling.i420(scaling: picture, toWidth: width, height: height, pool: scaledFrames)
                    return try x264.encode(input, forceKeyframe: force)
                }
            }
            guard var encoded else { return nil }
            keyframes.pictureMade(isKeyframe: encoded.isKeyframe)
            encoded.layer = .reduced
            controls.counters.withLock { $0.reducedLayerFrames += 1 }
            return encoded
        } catch {
            controls.logger.error("reduced layer: encoding failed: \(error)")
            return nil
        }
    }

    /// Frees its x264 (not wanted any more, or nobody watches).
    mutating func close(_ controls: MediaThreadControls) {
        guard encoder != nil else { return }
        encoder = nil
        scaledFrames.releaseKept()
        frameCount = 0
        bitrateKbps = 0
        controls.logger.info("reduced layer: x264 closed")
    }
}

/// The synthetic camera, paced on CLOCK_MONOTONIC, encoded by x264. Its background (1.4 MB at
/// 720p) is kept like the encoder: while someone watches and `idleRelease` after; with nobody
/// watching nothing is drawn and the thread wakes once a `idleWakeInterval`, not once a frame.
struct TestPatternProducer: VideoProducer {
    let width: Int
    let height: Int
    let profileLevelID: String
    let configuration: CurrentConfiguration
    var description: String { "test-pattern" }

    func run(_ controls: MediaThreadControls, deliver: (EncodedVideoFrame) -> Void) {
        controls.setRunningEncoder("x264")
        var x264 = X264Stage(width: width, height: height, profileLevelID: profileLevelID,
                             idleRelease: controls.idleRelease, configuration: configuration)
        var pattern = WhileWatched<TestPatternSource>(keepFor: controls.idleRelease)
        // Its frames, drawn into reused buffers (FrameBufferPool); freed with the background.
        let frames = FrameBufferPool()
        var jpeg = JPEGStage(idleRelease: controls.idleRelease)
        controls.stills.setUnavailable(nil)
        let makePattern = { [width, height] in try TestPatternSource(width: width, height: height) }
        let interval = UInt64(1_000_000_000 / max(1, configuration().framesPerSecond))
        var next = MonotonicClock.now().nanoseconds
        let start = next
        var index: UInt64 = 0
        while controls.isRunning {
            DedicatedThread.sleep(until: next)
            let now = MonotonicClock.now()
            // Freshest frame wins: if encoding fell behind, skip the missed slots instead of queueing.
            next += interval
            if now.nanoseconds > next { next = now.nanoseconds + interval }
            // The index counts frame slots since the start, so slots missed while encoding show as a
            // gap in the sequence numbers (X264Stage counts them as frames it could not take).
            index = max(index + 1, (now.nanoseconds - start) / interval)
            guard controls.wantsPictures else {
                if pattern.unwatched(at: now) {   // first: the encoder's release trims the heap after both
                    frames.releaseKept()
                }
                jpeg.idle(at: now, controls.stills)
                x264.unwatched(at: now, controls)
                controls.sleepWhileUnwatched()
                next = MonotonicClock.now().nanoseconds
                continue
            }
            let source: TestPatternSource
            do {
                guard let made = try pattern.use(at: now, make: makePattern) else { continue }
                source = made
            } catch {
                controls.logger.error("test pattern failed: \(error); trying again in 5 s")
                continue
            }
            let frame = controls.measuringCPU(\.testPatternCPUNanoseconds) { source.frame(at: now, index: index, pool: frames) }
            controls.countCapturedFrame()
            jpeg.frame(frame, at: now, controls.stills)   // stills first: a snapshot does not wait for x264
            guard controls.isWatched else {
                x264.unwatched(at: now, controls)
                continue
            }
            x264.encode(frame, at: now, controls, deliver: deliver)
        }
    }
}

/// A pre-encoded Annex-B stream, looped at the configured rate with no encoder in the process; a
/// keyframe request jumps to the stream's next IDR.
struct FileProducer: VideoProducer {
    let path: String
    let file: AnnexBFileSource
    var width: Int { file.width }
    var height: Int { file.height }
    var description: String { "file:\(path) (\(file.accessUnits.count) frames, passthrough)" }

    func run(_ controls: MediaThreadControls, deliver: (EncodedVideoFrame) -> Void) {
        controls.setRunningEncoder("passthrough")
        controls.stills.setUnavailable("the source is an H.264 file played as it is: there are no raw pictures to make a JPEG from (rtcam has no H.264 decoder)")
        var file = self.file
        let interval = UInt64(file.frameInterval.nanosecondsClamped)
        var next = MonotonicClock.now().nanoseconds
        while controls.isRunning {
            DedicatedThread.sleep(until: next)
            let now = MonotonicClock.now()
            next += interval
            if now.nanoseconds > next { next = now.nanoseconds + interval }
            guard controls.isWatched else {
                controls.sleepWhileUnwatched()
                next = MonotonicClock.now().nanoseconds
                continue
            }
            let forced = controls.takeKeyframeRequest()
            if forced { file.skipToNextKeyframe() }
            let frame = file.nextFrame(captureTime: now)
            controls.record(frame, forced: forced, at: now)
            deliver(frame)
        }
    }
}

/// A V4L2 camera as the driver paces it, through the encoder the plan chose: its own H.264
/// (passthrough), the board's V4L2 M2M encoder (falling back to x264 if it fails), or x264. A camera
/// that goes away (USB unplug) is reported and reopened when it comes back, without restarting the
/// daemon. The camera is closed when the thread ends (a new pipeline may open it).
struct CameraProducer: VideoProducer, @unchecked Sendable {
    let camera: V4L2VideoSource
    let plan: VideoEncoderPlan
    /// Passthrough: the camera's stream as probed at start (its SPS/PPS already seen).
    let passthroughStream: CameraH264Stream
    let profileLevelID: String
    let configuration: CurrentConfiguration
    var width: Int { camera.width }
    var height: Int { camera.height }
    var description: String { camera.description }

    func run(_ controls: MediaThreadControls, deliver: (EncodedVideoFrame) -> Void) {
        defer { camera.stop() }
        switch plan {
        case .passthrough:
            controls.setRunningEncoder(plan.description)
            runPassthrough(controls, deliver: deliver)
            return
        case let .hardware(path, _):
            controls.setRunningEncoder(plan.description)
            if runHardwareEncoder(path, controls, deliver: deliver) { return }
            guard camera.pixelFormat != nil, controls.isRunning else { return }
            controls.logger.warning("falling back to x264 for \(camera.path)")
        case .x264:
            if camera.deliversJPEG {
                runMJPEG(controls, deliver: deliver)
                return
            }
        }
        controls.setRunningEncoder("x264")
        controls.stills.setUnavailable(nil)
        var x264 = X264Stage(width: width, height: height, profileLevelID: profileLevelID,
                             idleRelease: controls.idleRelease, configuration: configuration)
        var jpeg = JPEGStage(idleRelease: controls.idleRelease)
        while controls.isRunning {
            do {
                try camera.withNextFrame(timeoutMilliseconds: 500) { result in
                    let now = MonotonicClock.now()
                    controls.countCapturedFrame()
                    guard controls.wantsPictures else {
                        jpeg.idle(at: now, controls.stills)
                        x264.unwatched(at: now, controls)
                        return
                    }
                    switch result {
                    case let .success(frame):
                        jpeg.frame(frame, at: now, controls.stills)
                        guard controls.isWatched else {
                            x264.unwatched(at: now, controls)
                            return
                        }
                        x264.encode(frame, at: now, controls, deliver: deliver)
                    case let .failure(error):
                        let dropped: Int = controls.counters.withLock { $0.framesDropped += 1; return $0.framesDropped }
                        if dropped == 1 || dropped % 100 == 0 {
                            controls.logger.warning("\(camera.path): a frame could not be used (\(error)); \(dropped) dropped so far")
                        }
                    }
                }
            } catch {
                waitForCameraToReturn(controls, after: error)
            }
        }
    }

    /// A camera that sends its own JPEGs (MJPEG): each frame goes as it is to the stills clients
    /// (/snapshot.jpg, /stream.mjpg at the camera's size: no re-encode) and is decoded to I420 only
    /// when x264 needs it (a WebRTC or RTSP viewer) or a smaller still is asked for, at most once per
    /// frame. The decoder is made on the first such frame and closed `idleRelease` after the last,
    /// like x264. A frame that is no whole JPEG (cut short, garbage) or does not decode is counted
    /// (`cameraJPEG.badFrames`, /api/status and /metrics) and skipped.
    private func runMJPEG(_ controls: MediaThreadControls, deliver: (EncodedVideoFrame) -> Void) {
        controls.setRunningEncoder("x264")
        controls.stills.setUnavailable(nil)
        controls.counters.withLock { $0.cameraJPEG = CameraJPEGCounters() }
        var x264 = X264Stage(width: width, height: height, profileLevelID: profileLevelID,
                             idleRelease: controls.idleRelease, fullRangeBT601: true, configuration: configuration)
        var stills = JPEGStage(idleRelease: controls.idleRelease)
        var decoder = WhileWatched<JPEGDecoder>(keepFor: controls.idleRelease)
        // The decoded pictures, reused frame to frame (FrameBufferPool); freed with the decoder.
        let decodedFrames = FrameBufferPool()
        let (width, height, path) = (width, height, camera.path)
        while controls.isRunning {
            do {
                try camera.withNextCapturedFrame(timeoutMilliseconds: 500) { frame in
                    let now = MonotonicClock.now()
                    controls.countCapturedFrame()
                    guard controls.wantsPictures else {
                        stills.idle(at: now, controls.stills)
                        x264.unwatched(at: now, controls)
                        if decoder.unwatched(at: now) { decodedFrames.releaseKept() }
                        return
                    }
                    let jpeg: UnsafeRawBufferPointer
                    switch JPEGBounds.wholeImage(in: frame.data) {
                    case let .success(range): jpeg = UnsafeRawBufferPointer(rebasing: frame.data[range])
                    case let .failure(problem):
                        countBadJPEG(problem.description, controls)
                        return
                    }
                    let sequenceNumber = UInt64(frame.sequence)
                    var decoded: RawVideoFrame?
                    var triedDecoding = false
                    /// The frame as I420, decoded on first use.
                    func picture() -> RawVideoFrame? {
                        if triedDecoding { return decoded }
                        triedDecoding = true
                        let made: JPEGDecoder
                        do {
                            guard let existing = try decoder.use(at: now, make: { try JPEGDecoder() }) else { return nil }
                            made = existing
                        } catch {
                            controls.logger.error("\(path): the JPEG decoder could not be made: \(error); trying again in 5 s")
                            return nil
                        }
                        let result = controls.measuringCPU(\.jpegDecodeCPUNanoseconds) { () -> Result<DecodedJPEG, JPEGDecodeError> in
                            do throws(JPEGDecodeError) {
                                return .success(try made.decodeI420(jpeg, captureTime: frame.captureTime, sequenceNumber: sequenceNumber,
                                                                    pool: decodedFrames))
                            } catch {
                                return .failure(error)
                            }
                        }
                        switch result {
                        case let .success(image):
                            guard image.frame.width == width & ~1, image.frame.height == height & ~1 else {
                                countBadJPEG("a \(image.frame.width)x\(image.frame.height) JPEG from a camera set to \(width)x\(height)", controls)
                                return nil
                            }
                            controls.counters.withLock { counters in
                                counters.cameraJPEG?.decoded += 1
                                if image.warning != nil { counters.cameraJPEG?.decodedWithWarnings += 1 }
                                counters.cameraJPEG?.subsampling = image.subsampling.rawValue
                            }
                            decoded = image.frame
                            return image.frame
                        case let .failure(problem):
                            countBadJPEG(problem.description, controls)
                            return nil
                        }
                    }
                    stills.cameraJPEG(jpeg, width: width, height: height, captureTime: frame.captureTime,
                                      sequenceNumber: sequenceNumber, at: now, controls.stills, decode: picture)
                    guard controls.isWatched else {
                        x264.unwatched(at: now, controls)
                        if !triedDecoding, decoder.unwatched(at: now) { decodedFrames.releaseKept() }
                        return
                    }
                    guard let raw = picture() else { return }
                    x264.encode(raw, at: now, controls, deliver: deliver)
                }
            } catch {
                waitForCameraToReturn(controls, after: error)
            }
        }
    }

    /// A camera JPEG refused: counted, logged the first time and every 100th.
    private func countBadJPEG(_ problem: String, _ controls: MediaThreadControls) {
        let count: Int = controls.counters.withLock { counters in
            counters.cameraJPEG?.badFrames += 1
            counters.cameraJPEG?.lastProblem = problem
            return counters.cameraJPEG?.badFrames ?? 0
        }
        if count == 1 || count % 100 == 0 {
            controls.logger.warning("\(camera.path): skipped a bad JPEG from the camera (\(problem)); \(count) so far")
        }
    }

    /// The camera stopped (unplugged, unbound, or a read failed): reopened with backoff
    /// (CameraRecovery) until it streams again or the pipeline stops, with the state in /api/status
    /// (`camera`, `sourceProblem`) and the log; a keyframe is asked for once it is back.
    private func waitForCameraToReturn(_ controls: MediaThreadControls, after error: any Error) {
        guard controls.isRunning else { return }
        let path = camera.path
        controls.setSourceProblem("camera \(path) lost: \(error)")
        var actions = controls.counters.withLock { $0.camera.lost("\(error)", at: MonotonicClock.now()) }
        while controls.isRunning {
            var due: MonotonicTime?
            for action in actions {
                switch action {
                case let .log(line): controls.logger.error("\(path): \(line)")
                case let .tryReopen(at): due = at
                }
            }
            guard let due else { return }
            // In steps of at most 250 ms, so that a stop does not wait for a long backoff.
            while controls.isRunning, MonotonicClock.now() < due {
                DedicatedThread.sleep(until: min(due, MonotonicClock.now() + .milliseconds(250)).nanoseconds)
            }
            guard controls.isRunning else { return }
            do {
                try camera.reopen()
            } catch {
                actions = controls.counters.withLock { $0.camera.attemptFailed("\(error)", at: MonotonicClock.now()) }
                continue
            }
            for case let .log(line) in controls.counters.withLock({ $0.camera.reopened(at: MonotonicClock.now()) }) {
                controls.logger.notice("\(path): \(line)")
            }
            controls.setSourceProblem(nil)
            controls.requestKeyframe()
            return
        }
    }

    /// The zero-copy chain of a Raspberry Pi: each camera buffer goes to the V4L2 M2M encoder by
    /// DMABUF import (or a copy, if the encoder refuses the import) and back to the camera once the
    /// encoder let go of it. Returns true when stopped, false when the encoder failed (the caller
    /// falls back to x264 on the same camera).
    private func runHardwareEncoder(_ encoderPath: String, _ controls: MediaThreadControls,
                                    deliver: (EncodedVideoFrame) -> Void) -> Bool {
        let configuration = configuration()
        let (width, height) = (width, height)
        let encoder = V4L2M2MEncoder(configuration: V4L2EncoderConfiguration(
            path: encoderPath, width: UInt32(width), height: UInt32(height), inputPixelFormat: camera.negotiatedFormat,
            inputBytesPerLine: camera.bytesPerLine, framesPerSecond: UInt32(configuration.framesPerSecond),
            bitrate: Int32(clamping: configuration.bitrateKbps * 1000),
            keyFrameInterval: Int32(clamping: configuration.framesPerSecond * configuration.keyframeIntervalSeconds),
            profile: .constrainedBaseline, level: MediaPipeline.v4l2Level(profileLevelID), repeatSequenceHeader: true,
            inputMemory: .dmabuf))
        do {
            try encoder.start()
        } catch {
            controls.logger.error("hardware encoder \(encoderPath) failed to start: \(error)")
            return false
        }
        defer { encoder.stop() }
        if !encoder.statistics.rejectedControls.isEmpty {
            controls.logger.notice("\(encoderPath) refused controls \(encoder.statistics.rejectedControls.keys.map(\.description).sorted()); using its defaults for them")
        }
        controls.logger.info("hardware encoder \(encoderPath): \(camera.negotiatedFormat) \(width)x\(height) in, H.264 out")
        controls.stills.setUnavailable(nil)
        var jpeg = JPEGStage(idleRelease: controls.idleRelease)
        var encoderError: V4L2Error?
        var heldInputs = 0
        var bitrate = EncoderBitrate(configuredKbps: configuration.bitrateKbps)
        while controls.isRunning, encoderError == nil {
            do {
                try camera.withNextCapturedFrame(timeoutMilliseconds: 500) { frame in
                    controls.countCapturedFrame()
                    // Stills read the camera's mapped buffer before the encoder gets it.
                    if controls.stills.isWanted, let raw = camera.rawFrame(frame) {
                        jpeg.frame(raw, at: MonotonicClock.now(), controls.stills)
                    } else {
                        jpeg.idle(at: MonotonicClock.now(), controls.stills)
                    }
                    guard controls.isWatched else { return }
                    let force = controls.takeKeyframeRequest()
                    do throws(V4L2Error) {
                        if let kbps = bitrate.takeChange(configured: controls.takeBitrateChange(), cap: controls.bitrateCap) {
                            try encoder.setBitrate(Int32(clamping: kbps * 1000))
                            controls.logger.debug("video bitrate now \(kbps) kb/s")
                        }
                        let result = try encoder.encodeWaiting(frame.encoderInput, forceKeyFrame: force)
                        if !result.inputReleased {
                            heldInputs += 1
                            if heldInputs == 1 || heldInputs % 100 == 0 {
                                controls.logger.warning("\(encoderPath) still held a camera buffer after 200 ms (\(heldInputs) times)")
                            }
                        }
                        for coded in result.frames {
                            let encoded = EncodedVideoFrame(accessUnit: coded.data, isKeyframe: coded.isKeyFrame,
                                                            captureTime: coded.captureTime == .zero ? frame.captureTime : coded.captureTime,
                                                            width: width, height: height)
                            controls.record(encoded, forced: force && coded.isKeyFrame, at: MonotonicClock.now())
                            deliver(encoded)
                        }
                    } catch {
                        encoderError = error
                    }
                }
            } catch {
                waitForCameraToReturn(controls, after: error)
            }
        }
        if let encoderError {
            controls.logger.error("hardware encoder \(encoderPath) failed: \(encoderError)")
            return false
        }
        return true
    }

    /// The camera's own H.264 to the viewers, with SPS/PPS put in front of every IDR; keyframe
    /// requests become the camera's FORCE_KEY_FRAME control, or a stream restart (at most one in
    /// 2 s) on cameras without it.
    private func runPassthrough(_ controls: MediaThreadControls, deliver: (EncodedVideoFrame) -> Void) {
        controls.stills.setUnavailable("\(camera.path) streams its own H.264 (passthrough): there are no raw pictures to make a JPEG from (rtcam has no H.264 decoder); choose the x264 or hardware encoder for snapshots")
        var stream = passthroughStream
        var lastRestart: MonotonicTime?
        var bitrateControlWorks = true
        var bitrate = EncoderBitrate(configuredKbps: configuration().bitrateKbps)
        let (width, height) = (width, height)
        while controls.isRunning {
            do {
                let now = MonotonicClock.now()
                if controls.keyframeIsRequested, lastRestart.map({ now - $0 >= .seconds(2) }) ?? true {
                    _ = controls.takeKeyframeRequest()
                    let outcome = try camera.forceKeyFrame()
                    if outcome == .streamRestarted { lastRestart = now }
                    controls.logger.debug("asked \(camera.path) for an IDR: \(outcome)")
                }
                if let kbps = bitrate.takeChange(configured: controls.takeBitrateChange(), cap: controls.bitrateCap),
                   bitrateControlWorks {
                    do {
                        try camera.setEncoderBitrate(bitsPerSecond: Int32(clamping: kbps * 1000))
                    } catch {
                        if error == .deviceGone { throw error }
                        bitrateControlWorks = false
                        controls.logger.notice("\(camera.path) has no bitrate control (\(error)): the camera keeps its own rate")
                    }
                }
                try camera.withNextCapturedFrame(timeoutMilliseconds: 500) { frame in
                    controls.countCapturedFrame()
                    guard let encoded = stream.frame(fromBuffer: frame.data, captureTime: frame.captureTime,
                                                     width: width, height: height),
                          controls.isWatched else { return }
                    if encoded.isKeyframe { controls.logger.debug("\(camera.path): IDR, \(encoded.accessUnit.count) bytes") }
                    controls.record(encoded, forced: false, at: MonotonicClock.now())
                    deliver(encoded)
                }
            } catch {
                waitForCameraToReturn(controls, after: error)
            }
        }
    }
}
