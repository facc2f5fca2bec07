#if canImport(Glibc)
import Glibc
#endif
import RTCBase
import Synchronization
import Testing
@testable import CameraServer

/// The encoder and test-pattern memory that exists only while someone watches, on a virtual clock.
@Suite struct WhileWatchedTests {
    /// Counts how many are alive, so the tests see the resource really freed, not just forgotten.
    final class Census { var alive = 0 }
    final class Buffers {
        let id: Int
        let census: Census
        init(id: Int, census: Census = Census()) { self.id = id; self.census = census; census.alive += 1 }
        deinit { census.alive -= 1 }
    }

    static func at(_ milliseconds: UInt64) -> MonotonicTime { MonotonicTime(milliseconds: milliseconds) }

    @Test("made once on first use and reused while watched; nothing is made while nobody watches")
    func madeOnceAndReused() {
        var made = 0
        var slot = WhileWatched<Buffers>(keepFor: .seconds(10))
        #expect(slot.unwatched(at: Self.at(0)) == false)
        #expect(slot.resource == nil)
        for _ in 0 ..< 5 {
            _ = slot.use(at: Self.at(0)) { made += 1; return Buffers(id: made) }
        }
        #expect(made == 1)
        #expect(slot.resource?.id == 1)
    }

    @Test("dropped keepFor after the last viewer, not before; a viewer in between restarts the wait")
    func droppedAfterKeepFor() {
        let census = Census()
        var made = 0
        var slot = WhileWatched<Buffers>(keepFor: .seconds(10))
        _ = slot.use(at: Self.at(0)) { made += 1; return Buffers(id: made, census: census) }
        #expect(census.alive == 1)
        #expect(slot.unwatched(at: Self.at(1_000)) == false)
        #expect(slot.unwatched(at: Self.at(10_999)) == false)
        // A viewer comes back for one frame: the 10 s start again from the next unwatched moment.
        _ = slot.use(at: Self.at(10_999)) { made += 1; return Buffers(id: made, census: census) }
        #expect(slot.unwatched(at: Self.at(11_000)) == false)
        #expect(slot.unwatched(at: Self.at(20_999)) == false)
        #expect(slot.resource != nil)
        #expect(slot.unwatched(at: Self.at(21_000)) == true)
        #expect(slot.resource == nil)
        #expect(census.alive == 0)
        #expect(slot.unwatched(at: Self.at(40_000)) == false)
        // The next viewer gets a new one.
        #expect(slot.use(at: Self.at(40_001)) { made += 1; return Buffers(id: made, census: census) }?.id == 2)
        #expect(census.alive == 1)
        #expect(made == 2)
    }

    @Test("a make that throws leaves the slot empty and is not called again for retryAfter, then is")
    func failedMakeRetriedAfterAWhile() {
        struct Refused: Error {}
        var calls = 0
        var slot = WhileWatched<Int>(keepFor: .seconds(1), retryAfter: .seconds(5))
        #expect(throws: Refused.self) { try slot.use(at: Self.at(0)) { calls += 1; throw Refused() } }
        #expect(slot.resource == nil)
        // Every frame of the next 5 s: no new attempt (and so no error to log 30 times a second).
        for millisecond in stride(from: UInt64(33), to: 5_000, by: 33) {
            #expect(slot.use(at: Self.at(millisecond)) { calls += 1; return 7 } == nil)
        }
        #expect(calls == 1)
        #expect(throws: Refused.self) { try slot.use(at: Self.at(5_000)) { calls += 1; throw Refused() } }
        #expect(calls == 2)
        #expect(slot.use(at: Self.at(10_000)) { calls += 1; return 7 } == 7)
        #expect(slot.use(at: Self.at(10_033)) { calls += 1; return 8 } == 7)
        #expect(calls == 3)
    }
}

/// The same on the real video thread: the test pattern's x264 is closed when nobody has watched for
/// `idleRelease`, and a returning viewer gets a new encoder whose first frame is a keyframe.
@Suite struct MediaPipelineIdleReleaseTests {
    final class Received: Sendable {
        private let frames = Mutex<[Bool]>([])   // isKeyframe of each delivered frame
        func add(keyframe: Bool) { frames.withLock { $0.append(keyframe) } }
        var count: Int { frames.withLock { $0.count } }
        func keyframe(at index: Int) -> Bool { frames.withLock { $0[index] } }
    }

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
        let received = Received()
        let audio = Mutex(0)
        pipeline.start(video: { received.add(keyframe: $0.isKeyframe) }, audio: { _ in audio.withLock { $0 += 1 } })
        defer { pipeline.stop() }

        // Nobody watches yet: no encoder is made (not even to check the settings: the pages of
        // x264's code would stay in the idle daemon's RSS).
        DedicatedThread.sleep(until: (MonotonicClock.now() + .milliseconds(500)).nanoseconds)
        #expect(pipeline.encodersOpened == 0 && pipeline.audioEncodersOpened == 0)
        pipeline.setViewersPresent(true)
        #expect(Self.wait(seconds: 5) { received.count >= 5 && audio.withLock { $0 } >= 5 })
        #expect(received.keyframe(at: 0))
        #expect(pipeline.encodersOpened == 1 && pipeline.audioEncodersOpened == 1)
        pipeline.setViewersPresent(false)
        // Unwatched for well over 300 ms: closed. Nothing is delivered meanwhile, nothing is made.
        DedicatedThread.sleep(until: (MonotonicClock.now() + .milliseconds(900)).nanoseconds)
        let beforeReturn = received.count
        #expect(pipeline.encodersOpened == 1 && pipeline.audioEncodersOpened == 1)
        pipeline.setViewersPresent(true)
        #expect(Self.wait(seconds: 5) { received.count >= beforeReturn + 3 && pipeline.audioEncodersOpened == 2 })
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
        let video = MediaPipelineIdleReleaseTests.Received()
        let audio = Mutex(0)
        pipeline.start(video: { video.add(keyframe: $0.isKeyframe) }, audio: { _ in audio.withLock { $0 += 1 } })
        defer { pipeline.stop() }
        // Nobody watches: both threads go to sleep for up to 30 s.
        DedicatedThread.sleep(until: (MonotonicClock.now() + .milliseconds(500)).nanoseconds)
        #expect(video.count == 0 && audio.withLock { $0 } == 0)
        let arrival = MonotonicClock.now()
        pipeline.setViewersPresent(true)
        #expect(MediaPipelineIdleReleaseTests.wait(seconds: 5) { video.count >= 1 && audio.withLock { $0 } >= 1 })
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
        let delivered = Mutex(0)
        pipeline.start(video: { _ in delivered.withLock { $0 += 1 } }, audio: { _ in delivered.withLock { $0 += 1 } })
        pipeline.setViewersPresent(viewers)
        if viewers {
            #expect(MediaPipelineIdleReleaseTests.wait(seconds: 5) { delivered.withLock { $0 } >= 10 })
        } else {
            DedicatedThread.sleep(until: (MonotonicClock.now() + .milliseconds(200)).nanoseconds)   // both asleep
        }
        let started = MonotonicClock.now()
        pipeline.stop()
        let stopping = MonotonicClock.now() - started
        let atStop = delivered.withLock { $0 }
        DedicatedThread.sleep(until: (MonotonicClock.now() + .milliseconds(300)).nanoseconds)
        #expect(delivered.withLock { $0 } == atStop)
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

@Suite struct DedicatedThreadNameTests {
    private static func ownName() -> String {
        let descriptor = open("/proc/thread-self/comm", O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return "" }
        defer { close(descriptor) }
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        return String(decoding: buffer.prefix(max(0, count)), as: UTF8.self).trimmingNewline()
    }

    @Test("a dedicated thread carries its name (cut to the kernel's 15 bytes), as top -H and the benchmarks see it")
    func threadsAreNamed() {
        let names = Mutex<[String]>([])
        for name in ["rtcam-video", "a-name-longer-than-fifteen"] {
            let thread = DedicatedThread.start(name: name) { names.withLock { $0.append(Self.ownName()) } }
            #expect(thread.join(timeout: .seconds(5)))
        }
        #expect(names.withLock { $0 } == ["rtcam-video", "a-name-longer-t"])
    }
}

private extension String {
    func trimmingNewline() -> String { hasSuffix("\n") ? String(dropLast()) : self }
}
