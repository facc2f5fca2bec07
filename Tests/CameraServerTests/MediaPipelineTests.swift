#if canImport(Glibc)
import Glibc
#endif
import MediaSources
import RTCBase
import Synchronization
import Testing
@testable import CameraServer
import SystemSupport

/// Collects what a pipeline delivers, as the hub would be handed it.
final class RecordingFrameSink: EncodedFrameSink, Sendable {
    private let state = Mutex<(generation: Int, videoKeyframes: [Bool], audioFrames: Int, stale: Int)>((0, [], 0, 0))

    func beginGeneration(_ generation: Int) { state.withLock { $0.generation = generation } }
    func deliver(_ frame: EncodedVideoFrame, generation: Int) {
        state.withLock { generation == $0.generation ? $0.videoKeyframes.append(frame.isKeyframe) : ($0.stale += 1) }
    }
    func deliver(_ frame: EncodedAudioFrame, generation: Int) {
        state.withLock { generation == $0.generation ? ($0.audioFrames += 1) : ($0.stale += 1) }
    }

    var videoCount: Int { state.withLock { $0.videoKeyframes.count } }
    var audioCount: Int { state.withLock { $0.audioFrames } }
    var total: Int { state.withLock { $0.videoKeyframes.count + $0.audioFrames } }
    func keyframe(at index: Int) -> Bool { state.withLock { $0.videoKeyframes[index] } }
}

/// The same on the real video thread: the test pattern's x264 is closed when nobody has watched for
/// `idleRelease`, and a returning viewer gets a new encoder whose first frame is a keyframe.
@Suite struct MediaPipelineIdleReleaseTests {
    /// Polls `condition` every 10 ms for up to `seconds` (the video thread runs in real time).
    static func wait(seconds: Double, for condition: () -> Bool) -> Bool {
        let deadline = MonotonicClock.now() + .milliseconds(Int64(seconds * 1000))
        while MonotonicClock.now() < deadline {
            if condition() { return true }
            DedicatedThread.sleep(until: (MonotonicClock.now() + .milliseconds(10)).nanoseconds)
        }
        return condition()
    }

    @Test("x264 and Opus are made for the first viewer, closed 300 ms after the last, and made again, starting with a keyframe, when one returns")
    func encodersExistOnlyWhileWatched() throws {
        let pipeline = try MediaPipeline(configuration: .smallTestPattern(audio: .testTone), logger: .init(label: "test"),
                                         idleRelease: .milliseconds(300))
        let received = RecordingFrameSink()
        pipeline.start(sink: received, generation: 0)
        defer { pipeline.stop() }

        // Nobody watches yet: no encoder is made (not even to check the settings: the pages of
        // x264's code would stay in the idle daemon's RSS).
        DedicatedThread.sleep(until: (MonotonicClock.now() + .milliseconds(500)).nanoseconds)
        #expect(pipeline.encodersOpened == 0 && pipeline.audioEncodersOpened == 0)
        pipeline.setViewersPresent(true)
        #expect(Self.wait(seconds: 5) { received.videoCount >= 5 && received.audioCount >= 5 })
        #expect(received.keyframe(at: 0))
        #expect(pipeline.encodersOpened == 1 && pipeline.audioEncodersOpened == 1)
        pipeline.setViewersPresent(false)
        // Unwatched for well over 300 ms: closed. Nothing is delivered meanwhile, nothing is made.
        DedicatedThread.sleep(until: (MonotonicClock.now() + .milliseconds(900)).nanoseconds)
        let beforeReturn = received.videoCount
        #expect(pipeline.encodersOpened == 1 && pipeline.audioEncodersOpened == 1)
        pipeline.setViewersPresent(true)
        #expect(Self.wait(seconds: 5) { received.videoCount >= beforeReturn + 3 && pipeline.audioEncodersOpened == 2 })
        #expect(pipeline.encodersOpened == 2, "a new x264 for the returning viewer")
        #expect(pipeline.audioEncodersOpened == 2, "a new Opus encoder for the returning viewer")
        #expect(received.keyframe(at: beforeReturn), "its first frame is an IDR")
    }
}

/// With nobody watching the synthetic sources' threads sleep (here up to 30 s at a time) instead of
/// waking for every frame; a viewer's arrival wakes them at once.
@Suite struct MediaPipelineIdleSleepTests {
    @Test("a viewer arriving while the test-pattern and test-tone threads sleep gets video and audio at once, not after the 30 s sleep")
    func viewerWakesSleepingSources() throws {
        let pipeline = try MediaPipeline(configuration: .smallTestPattern(audio: .testTone), logger: .init(label: "test"),
                                         idleRelease: .seconds(60), idleWakeInterval: .seconds(30))
        let received = RecordingFrameSink()
        pipeline.start(sink: received, generation: 0)
        defer { pipeline.stop() }
        // Nobody watches: both threads go to sleep for up to 30 s.
        DedicatedThread.sleep(until: (MonotonicClock.now() + .milliseconds(500)).nanoseconds)
        #expect(received.total == 0)
        let arrival = MonotonicClock.now()
        pipeline.setViewersPresent(true)
        #expect(MediaPipelineIdleReleaseTests.wait(seconds: 5) { received.videoCount >= 1 && received.audioCount >= 1 })
        let waited = MonotonicClock.now() - arrival
        #expect(waited < .seconds(3), "woken by the arrival, not by the 30 s timeout (took \(waited))")
    }
}

extension MediaConfiguration {
    /// The synthetic camera at 320x240 and 30 fps, cheap to encode in tests.
    static func smallTestPattern(audio: AudioSourceSetting) -> MediaConfiguration {
        var configuration = MediaConfiguration()
        configuration.video = .testPattern
        configuration.audio = audio
        configuration.width = 320
        configuration.height = 240
        configuration.framesPerSecond = 30
        return configuration
    }
}

/// `stop` waits for the pipeline's threads: once it returns nothing more is delivered (the daemon
/// closes the sessions and the media socket right after).
@Suite struct MediaPipelineStopTests {
    @Test("nothing is delivered after stop returns, from the video or the audio thread", arguments: [false, true])
    func nothingAfterStop(viewers: Bool) throws {
        let pipeline = try MediaPipeline(configuration: .smallTestPattern(audio: .testTone), logger: .init(label: "test"))
        let delivered = RecordingFrameSink()
        pipeline.start(sink: delivered, generation: 0)
        pipeline.setViewersPresent(viewers)
        if viewers {
            #expect(MediaPipelineIdleReleaseTests.wait(seconds: 5) { delivered.total >= 10 })
        } else {
            DedicatedThread.sleep(until: (MonotonicClock.now() + .milliseconds(200)).nanoseconds)   // both asleep
        }
        let started = MonotonicClock.now()
        pipeline.stop()
        let stopping = MonotonicClock.now() - started
        let atStop = delivered.total
        DedicatedThread.sleep(until: (MonotonicClock.now() + .milliseconds(300)).nanoseconds)
        #expect(delivered.total == atStop)
        #expect(stopping < .seconds(1), "sleeping threads are woken, not waited out (took \(stopping))")
    }
}

@Suite struct FileSourceLimitTests {
    @Test func aQuarterOfMemoryAtMost512MB() {
        #expect(MediaPipeline.fileSourceLimit(physicalMemory: 512 << 20) == 128 << 20)   // Pi Zero 2 W
        #expect(MediaPipeline.fileSourceLimit(physicalMemory: 8 << 30) == 512 << 20)     // Pi 5, 8 GB
        #expect(MediaPipeline.fileSourceLimit(physicalMemory: -1) == 512 << 20)          // sysconf failed
    }
}
