import ALSA
import Logging
import MediaSources
import NIOConcurrencyHelpers
import RTCBase
import Synchronization
import SystemSupport

/// What the pipeline's owner says to its media threads, and what they report back, in one place:
/// run or stop, watched or not (and a wake-up when a viewer arrives), a keyframe or a new bitrate
/// wanted, and the counters /api/status shows. Every producer takes it; none keeps atomics of its own.
final class MediaThreadControls: Sendable {
    let logger: Logger
    /// How long x264, Opus and the test pattern's background outlive the last viewer (then their
    /// memory goes back to the system until someone watches again).
    let idleRelease: Duration
    /// While nobody watches, the synthetic sources' threads sleep this long at a time (instead of
    /// waking for every frame); a viewer's arrival wakes them at once.
    let idleWakeInterval: Duration

    private let running = Atomic<Bool>(true)
    /// Encoding only while someone watches: on a Pi an idle camera should cost almost no CPU. The
    /// sources keep running (a camera's buffers keep cycling) so the first viewer waits for nothing
    /// but the keyframe it asks for.
    private let watched = Atomic<Bool>(false)
    /// True while someone watches (or the pipeline stops): what the sleeping threads wait for.
    private let viewerArrival = ConditionLock(value: false)
    private let keyframeRequested = Atomic<Bool>(false)
    /// A new bitrate for the running encoder (0: none pending); x264 reconfigures without a restart.
    private let pendingBitrateKbps = Atomic<Int>(0)
    private let bitrateCapKbps = Atomic<Int>(0)
    /// The reduced encoding's bitrate (0: none wanted) and its own keyframe request (issue 24).
    private let reducedLayerKbps = Atomic<Int>(0)
    private let reducedKeyframeRequested = Atomic<Bool>(false)
    /// Some viewer's link is in a congestion episode (issue 24), among the full encoding's viewers
    /// and among the reduced one's: x264 holds that layer's periodic IDR.
    private let viewerLinkCongested = Atomic<Bool>(false)
    private let reducedLayerLinkCongested = Atomic<Bool>(false)
    let counters = Mutex(MediaCounters())
    /// Snapshot and MJPEG clients (issue 21): raw frames are wanted while they wait, even with no
    /// viewer (then no H.264 is encoded).
    let stills: StillFrames

    init(logger: Logger, idleRelease: Duration, idleWakeInterval: Duration, stills: StillFrames = StillFrames()) {
        self.logger = logger
        self.stills = stills
        self.idleRelease = idleRelease
        self.idleWakeInterval = min(idleWakeInterval, idleRelease)
    }

    // MARK: - From the owner

    func setWatched(_ present: Bool) {
        watched.store(present, ordering: .relaxed)
        viewerArrival.lock()
        viewerArrival.unlock(withValue: present || stills.isWanted)
    }

    /// Stills clients came or went: a sleeping thread wakes for them (or sleeps again).
    func stillsDemandChanged() {
        viewerArrival.lock()
        viewerArrival.unlock(withValue: isWatched || stills.isWanted || !isRunning)
    }

    func stop() {
        running.store(false, ordering: .relaxed)
        viewerArrival.lock()
        viewerArrival.unlock(withValue: true)   // wakes a sleeping thread so it sees `isRunning` and ends
    }

    func requestKeyframe() { keyframeRequested.store(true, ordering: .relaxed) }

    func setBitrate(kbps: Int) { pendingBitrateKbps.store(kbps, ordering: .relaxed) }

    /// The viewers' bandwidth estimate as a cap on the encoder's bitrate (issue 24; 0: no cap). An
    /// encoder that can retarget runs at the smaller of it and the configured bitrate (EncoderBitrate).
    func setBitrateCap(kbps: Int) { bitrateCapKbps.store(max(0, kbps), ordering: .relaxed) }

    /// The second, smaller encoding for viewers on slow links (0: none; an x264 producer makes it).
    func setReducedLayer(kbps: Int) { reducedLayerKbps.store(max(0, kbps), ordering: .relaxed) }

    func requestReducedKeyframe() { reducedKeyframeRequested.store(true, ordering: .relaxed) }

    /// Some viewer's link is in a congestion episode (a rate step's backlog drains at the link's
    /// rate), among the full encoding's viewers and among the reduced one's: an x264 producer holds
    /// that layer's periodic IDR until it is over (KeyframeSchedule).
    func setViewerLinksCongested(full: Bool, reduced: Bool) {
        viewerLinkCongested.store(full, ordering: .relaxed)
        reducedLayerLinkCongested.store(reduced, ordering: .relaxed)
    }

    /// A full-layer viewer's link is congested.
    var isViewerLinkCongested: Bool { viewerLinkCongested.load(ordering: .relaxed) }
    /// A reduced-layer viewer's link is congested.
    var isReducedLayerLinkCongested: Bool { reducedLayerLinkCongested.load(ordering: .relaxed) }

    /// The reduced encoding's bitrate while it is wanted (nil: it is not).
    var reducedLayerBitrate: Int? {
        let kbps = reducedLayerKbps.load(ordering: .relaxed)
        return kbps > 0 ? kbps : nil
    }

    /// A keyframe request of the reduced encoding, taken once.
    func takeReducedKeyframeRequest() -> Bool { reducedKeyframeRequested.exchange(false, ordering: .relaxed) }

    /// Whether a reduced-layer keyframe is asked for (left asked for).
    var reducedKeyframeIsRequested: Bool { reducedKeyframeRequested.load(ordering: .relaxed) }

    var bitrateCap: Int? {
        let kbps = bitrateCapKbps.load(ordering: .relaxed)
        return kbps > 0 ? kbps : nil
    }

    // MARK: - On the media threads

    var isRunning: Bool { running.load(ordering: .relaxed) }
    var isWatched: Bool { watched.load(ordering: .relaxed) }
    /// Pictures are wanted: by viewers (encoded) or by stills clients (raw, for JPEG).
    var wantsPictures: Bool { isWatched || stills.isWanted }

    /// A keyframe request, taken once (true at most once per request).
    func takeKeyframeRequest() -> Bool { keyframeRequested.exchange(false, ordering: .relaxed) }

    /// Whether a keyframe is asked for, without taking the request.
    var keyframeIsRequested: Bool { keyframeRequested.load(ordering: .relaxed) }

    /// A new bitrate to apply, taken once (nil: none asked since the last time).
    func takeBitrateChange() -> Int? {
        let kbps = pendingBitrateKbps.exchange(0, ordering: .relaxed)
        return kbps > 0 ? kbps : nil
    }

    /// Nobody watches: sleeps until someone does, the pipeline stops, or `idleWakeInterval` passed.
    func sleepWhileUnwatched() {
        if viewerArrival.lock(whenValue: true, timeoutSeconds: idleWakeInterval.millisecondsDouble / 1000) {
            viewerArrival.unlock()
        }
    }

    /// Runs `body` and adds the CPU time the calling thread spent in it to `counter` (/api/status).
    func measuringCPU<Result>(_ counter: WritableKeyPath<MediaCounters, UInt64>, _ body: () throws -> Result) rethrows -> Result {
        let before = MonotonicClock.threadCPUNanoseconds()
        defer {
            let used = MonotonicClock.threadCPUNanoseconds() &- before
            counters.withLock { $0[keyPath: counter] &+= used }
        }
        return try body()
    }

    /// Counts a frame that goes to the viewers (and the frame rate and bitrate over about a second).
    func record(_ frame: EncodedVideoFrame, forced: Bool, at now: MonotonicTime) {
        counters.withLock { $0.record(frameBytes: frame.accessUnit.count, forced: forced, at: now) }
    }

    /// A picture came from the source (a camera buffer, a drawn test-pattern frame): /metrics.
    func countCapturedFrame() {
        counters.withLock { $0.framesCaptured += 1 }
    }

    func setSourceProblem(_ problem: String?) {
        counters.withLock { $0.sourceProblem = problem }
    }

    func countSourceRestart() {
        counters.withLock { $0.sourceRestarts += 1 }
    }

    func setAdaptation(_ status: EncoderAdaptationStatus) {
        counters.withLock { $0.adaptation = status }
    }

    /// A periodic IDR began to wait for a congested link (x264's KeyframeSchedule): `held` so far.
    func setPeriodicKeyframesHeld(_ held: Int) {
        counters.withLock { $0.periodicKeyframesHeld = held }
    }

    /// A held periodic IDR's wait ended (an IDR was made: the held one, one asked for, a new encoder's).
    func periodicKeyframeHoldEnded(after wait: Duration) {
        counters.withLock { $0.longestKeyframeHold = max($0.longestKeyframeHold ?? .zero, wait) }
    }

    func setRunningEncoder(_ description: String) {
        counters.withLock { $0.encoder = description }
    }
}

/// What the media threads counted since the pipeline started.
struct MediaCounters: Sendable {
    var framesEncoded = 0
    /// Frames of the reduced encoding (issue 24), counted apart from `framesEncoded`.
    var reducedLayerFrames = 0
    /// Pictures the source gave (camera buffers dequeued, test-pattern frames drawn), used or not.
    var framesCaptured = 0
    var keyframesForced = 0
    /// Periodic IDRs x264 held back while a viewer's link was in a congestion episode (issue 24;
    /// KeyframeSchedule.holds), and the longest time one waited (nil: none has ended yet).
    var periodicKeyframesHeld = 0
    var longestKeyframeHold: Duration?
    /// The reduced encoding's periodic IDRs held likewise (ReducedLayerStage).
    var reducedLayerKeyframesHeld = 0
    /// x264 encoders made so far: one when the first viewer arrives, then one each time viewers
    /// return after `idleRelease`.
    var encodersOpened = 0
    /// Opus encoders made so far, likewise.
    var audioEncodersOpened = 0
    /// Raw camera frames that could not be encoded (a malformed buffer, a conversion that failed).
    var framesDropped = 0
    /// The encoder actually running ("x264" after a hardware encoder failed, say); empty before.
    var encoder = ""
    /// Why the source is not delivering, when it says (an exec source's program that failed); nil
    /// while it works.
    var sourceProblem: String?
    /// Times an exec source's program was started again (after a failure, for a keyframe, for a
    /// new bitrate).
    var sourceRestarts = 0
    /// A camera's losses and reopens (a V4L2 source; stays `.streaming` for the others).
    var camera = CameraRecovery()
    var framesPerSecond = 0.0
    var bitrateKbps = 0.0
    var encoderCPUNanoseconds: UInt64 = 0
    /// The reduced encoding's part of `encoderCPUNanoseconds` (scaling and x264).
    var reducedLayerCPUNanoseconds: UInt64 = 0
    var testPatternCPUNanoseconds: UInt64 = 0
    /// The video thread inside libjpeg-turbo's decoder (a camera's MJPEG for x264).
    var jpegDecodeCPUNanoseconds: UInt64 = 0
    var audioEncoderCPUNanoseconds: UInt64 = 0
    /// What the microphone's capture read, recovered and dropped (nil: no microphone).
    var microphone: ALSACaptureStatistics?
    /// x264's CPU adaptation (nil: no x264 running, e.g. passthrough or a hardware encoder).
    var adaptation: EncoderAdaptationStatus?
    /// A camera's own JPEGs (MJPEG capture): decoded, refused, passed through (nil: not MJPEG).
    var cameraJPEG: CameraJPEGCounters?
    private var windowStart: MonotonicTime?
    private var windowFrames = 0
    private var windowBytes = 0

    mutating func record(frameBytes: Int, forced: Bool, at now: MonotonicTime) {
        framesEncoded += 1
        if forced { keyframesForced += 1 }
        let start = windowStart ?? now
        windowStart = start
        windowFrames += 1
        windowBytes += frameBytes
        let elapsed = now - start
        if elapsed >= .seconds(1) {
            let seconds = elapsed.millisecondsDouble / 1000
            framesPerSecond = Double(windowFrames - 1) / seconds
            bitrateKbps = Double(windowBytes) * 8 / 1000 / seconds
            windowStart = now
            windowFrames = 1
            windowBytes = frameBytes
        }
    }
}

/// The bitrate an encoder that can retarget runs at: the configured one (settings, the owner's
/// data channel command), capped by what the viewers' links take (the hub's bandwidth policy,
/// issue 24). Kept by the encoder's thread; `takeChange` says when to reconfigure.
struct EncoderBitrate: Equatable {
    private(set) var configuredKbps: Int
    private(set) var capKbps: Int?
    private var appliedKbps: Int

    init(configuredKbps: Int, capKbps: Int? = nil) {
        self.configuredKbps = configuredKbps
        self.capKbps = capKbps
        appliedKbps = min(configuredKbps, capKbps ?? configuredKbps)
    }

    var effectiveKbps: Int { min(configuredKbps, capKbps ?? configuredKbps) }

    /// A settings change (`configured`, taken from the controls) and the cap now: the bitrate to
    /// set when it differs from the one last applied, else nil.
    mutating func takeChange(configured: Int?, cap: Int?) -> Int? {
        if let configured { configuredKbps = configured }
        capKbps = cap
        let effective = effectiveKbps
        guard effective != appliedKbps || configured != nil else { return nil }
        appliedKbps = effective
        return effective
    }
}

/// What /api/status and the page show of the CPU adaptation.
struct EncoderAdaptationStatus: Sendable, Equatable {
    var preference: DegradationPreference
    var configured: EncodedFormat
    var current: EncodedFormat
    /// Why `current` is what it is (nil: never changed).
    var reason: String?
    var changes: Int
    /// Processing time over the frame interval, over the last two seconds (nil: not measured yet).
    var encodeUsage: Double?
    /// Source frames the encoder was still busy for.
    var framesSkipped: Int
    /// A cgroup's CPU limit on the process, in cores (nil: none), and the share of it used lately.
    var cpuLimitCores: Double? = nil
    var cpuLimitUsed: Double? = nil
    /// Mean time from capture to x264's output over the last two seconds.
    var captureToEncoded: Duration? = nil
}

/// What the video thread did with a camera's own JPEGs (MJPEG capture): /api/status, /metrics.
struct CameraJPEGCounters: Sendable, Equatable {
    /// Decoded to I420 for x264 (only while someone watches over WebRTC or RTSP, or for a scaled still).
    var decoded = 0
    /// Decoded, with libjpeg-turbo's warning (the picture was used).
    var decodedWithWarnings = 0
    /// Refused and skipped: truncated, not a JPEG, corrupt, or not the negotiated size.
    var badFrames = 0
    /// The last refusal's reason.
    var lastProblem: String?
    /// The JPEGs' sampling as the last decoded one had it ("4:2:2" from most webcams).
    var subsampling: String?
}
