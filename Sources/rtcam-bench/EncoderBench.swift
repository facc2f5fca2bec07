#if canImport(Glibc)
import Glibc
#endif
import MediaSources
import Opus
import RTCBase
import X264
import SystemSupport

/// `rtcam-bench x264`: "x264 alone", the denominator of the stack-overhead ratio. The daemon's video
/// thread does exactly this (CameraServer/MediaPipeline.swift, runTestPattern + runVideo): render the
/// test pattern at the capture instant, encode it with the same X264Encoder settings, paced on
/// CLOCK_MONOTONIC at the frame rate, and nothing else. CPU comes from getrusage over the run.
enum EncoderBench {
    static func run(_ options: Options) {
        let (width, height) = options.size("size", default: (1280, 720))
        let fps = options.int("fps", default: 30)
        let bitrate = options.int("bitrate", default: 2000)
        let seconds = options.double("seconds", default: 10)
        let withOpus = options.flag("opus")
        // --threads N: x264's sliced threads (the daemon's RTCAM_X264_THREADS; 1 as shipped).
        let threads = options.int("threads", default: 1)
        // --reduced-layer KBPS: also the daemon's second encoding for viewers on slow links (issue 24):
        // the same picture scaled to half each side (PictureScaling) and encoded by a second x264, every
        // second picture from 20 fps up (as CameraServer's ReducedLayerStage does).
        let reducedKbps = options.int("reduced-layer", default: 0)
        let reducedInterval = fps >= 20 ? 2 : 1
        let jsonPath = options.string("json", default: "out/bench/x264.json")
        // --output PATH also writes the stream (Annex-B), e.g. for the daemon's `--source file:PATH`.
        let outputPath = options.optionalString("output")
        var stream: [UInt8] = []
        // The daemon: profile-level-id "42e0" + level for the size and rate, keyframe every 2 s
        // (MediaConfiguration.keyframeIntervalSeconds), X264Encoder defaults for the rest
        // (ultrafast + zerolatency, 1 thread, VBV 500 ms).
        let profileLevelID = H264Level.constrainedBaselineProfileLevelID(width: width, height: height, framesPerSecond: fps)
        let encoder: X264Encoder
        let source: TestPatternSource
        var reduced: X264Encoder?
        do {
            encoder = try X264Encoder(width: width, height: height, fps: fps, bitrateKbps: bitrate,
                                      profileLevelID: profileLevelID, keyframeInterval: fps * 2, threads: threads)
            source = try TestPatternSource(width: width, height: height)
            if reducedKbps > 0 {
                reduced = try X264Encoder(width: width / 4 * 2, height: height / 4 * 2, fps: fps / reducedInterval,
                                          bitrateKbps: reducedKbps, profileLevelID: profileLevelID,
                                          keyframeInterval: fps * 2 / reducedInterval)
            }
        } catch {
            fail("cannot set up the encoder: \(error)")
        }

        // Warm-up (first frames allocate x264's buffers), outside the measurement.
        // The stream written with --output starts with the IDR of the first measured frame.
        for index in 0 ..< 3 {
            _ = try? encoder.encode(source.frame(at: MonotonicClock.now(), index: UInt64(index)), forceKeyframe: index == 0)
        }
        var forceFirstKeyframe = outputPath != nil

        let stopAudio = StopFlag()
        let audioThread: DedicatedThread? = withOpus ? DedicatedThread.start(name: "rtcam-bench") { runOpus(until: stopAudio) } : nil

        let interval = Duration.nanoseconds(Int64(1_000_000_000 / fps))
        let frameCount = Int(seconds * Double(fps))
        var renderNanoseconds: [Double] = []
        var encodeNanoseconds: [Double] = []
        var renderCPU: UInt64 = 0
        var encodeCPU: UInt64 = 0
        var reducedCPU: UInt64 = 0
        var scalingCPU: UInt64 = 0
        var reducedBytes = 0
        var bytes = 0
        var keyframes = 0
        var skipped = 0
        let startCPU = BenchClock.processCPU()
        let start = MonotonicClock.now()
        var next = start
        for index in 0 ..< frameCount {
            MonotonicClock.sleep(until: next)
            let now = MonotonicClock.now()
            next = next + interval
            if now > next {            // freshest frame wins, as in the daemon
                next = now + interval
                skipped += 1
            }
            let cpu0 = MonotonicClock.threadCPUNanoseconds()
            let frame = source.frame(at: now, index: UInt64(index))
            let cpu1 = MonotonicClock.threadCPUNanoseconds()
            let rendered = MonotonicClock.now()
            let encoded: EncodedVideoFrame?
            do {
                encoded = try encoder.encode(frame, forceKeyframe: forceFirstKeyframe)
                forceFirstKeyframe = false
            } catch {
                fail("encoding failed: \(error)")
            }
            let cpu2 = MonotonicClock.threadCPUNanoseconds()
            if let reduced, index % reducedInterval == 0 {
                do {
                    let smaller = try PictureScaling.i420(scaling: frame, toWidth: reduced.width, height: reduced.height)
                    scalingCPU += MonotonicClock.threadCPUNanoseconds() - cpu2
                    reducedBytes += try reduced.encode(smaller, forceKeyframe: false)?.accessUnit.count ?? 0
                } catch {
                    fail("the reduced layer failed: \(error)")
                }
            }
            let cpu3 = MonotonicClock.threadCPUNanoseconds()
            let done = MonotonicClock.now()
            renderCPU += cpu1 - cpu0
            encodeCPU += cpu2 - cpu1
            reducedCPU += cpu3 - cpu2
            renderNanoseconds.append(Double((rendered - now).nanosecondsClamped))
            encodeNanoseconds.append(Double((done - rendered).nanosecondsClamped))
            if let encoded {
                if outputPath != nil { stream += encoded.accessUnit }
                bytes += encoded.accessUnit.count
                if encoded.isKeyframe { keyframes += 1 }
            }
        }
        let end = MonotonicClock.now()
        let endCPU = BenchClock.processCPU()
        stopAudio.stop()
        audioThread?.join()

        let wall = Double((end - start).nanosecondsClamped) / 1e9
        let user = Double(endCPU.user - startCPU.user) / 1e9
        let system = Double(endCPU.system - startCPU.system) / 1e9
        let cpuSeconds = user + system
        let render = Percentiles(renderNanoseconds.map { $0 / 1e6 })
        let encode = Percentiles(encodeNanoseconds.map { $0 / 1e6 })
        let kbps = Double(bytes) * 8 / 1000 / wall
        printTable("x264 alone: \(width)x\(height)@\(fps), \(bitrate) kb/s, \(profileLevelID), ultrafast/zerolatency, \(threads) thread\(threads == 1 ? "" : "s"), \(frameCount) frames\(withOpus ? " + Opus 20 ms test tone" : "")",
                   header: ["wall s", "cpu s", "user s", "sys s", "% core", "render ms/frame", "encode ms p50", "encode ms p95", "kb/s out", "keyframes", "late"],
                   rows: [[format(wall), format(cpuSeconds, decimals: 3), format(user, decimals: 3), format(system, decimals: 3),
                           format(100 * cpuSeconds / wall, decimals: 1), format(render.mean), format(encode.p50), format(encode.p95),
                           format(kbps, decimals: 0), String(keyframes), String(skipped)]])
        if let reduced {
            let reducedSeconds = Double(reducedCPU) / 1e9
            printTable("the reduced layer beside it: \(reduced.width)x\(reduced.height)@\(reduced.frameRate), \(reducedKbps) kb/s (scaling + x264)",
                       header: ["full encode cpu s", "reduced cpu s", "of which scaling", "reduced / full", "% core added", "reduced kb/s out"],
                       rows: [[format(Double(encodeCPU) / 1e9, decimals: 3), format(reducedSeconds, decimals: 3),
                               format(Double(scalingCPU) / 1e9, decimals: 3),
                               format(reducedSeconds / max(Double(encodeCPU) / 1e9, 1e-9), decimals: 2),
                               format(100 * reducedSeconds / wall, decimals: 1),
                               format(Double(reducedBytes) * 8 / 1000 / wall, decimals: 0)]])
        }
        let json = JSONValue.object([
            ("benchmark", .string("x264-alone")),
            ("width", .int(width)), ("height", .int(height)), ("fps", .int(fps)), ("bitrate_kbps", .int(bitrate)),
            ("profile_level_id", .string(profileLevelID)), ("opus", .bool(withOpus)),
            ("frames", .int(frameCount)), ("late_frames", .int(skipped)), ("keyframes", .int(keyframes)),
            ("wall_s", .double(wall)), ("cpu_s", .double(cpuSeconds)), ("user_s", .double(user)), ("system_s", .double(system)),
            ("cpu_percent_of_core", .double(100 * cpuSeconds / wall)),
            ("render_thread_cpu_s", .double(Double(renderCPU) / 1e9)), ("encode_thread_cpu_s", .double(Double(encodeCPU) / 1e9)),
            ("reduced_layer_kbps", .int(reducedKbps)), ("reduced_layer_thread_cpu_s", .double(Double(reducedCPU) / 1e9)),
            ("reduced_layer_scaling_cpu_s", .double(Double(scalingCPU) / 1e9)),
            ("render_ms", render.json), ("encode_ms", encode.json),
            ("output_kbps", .double(kbps)), ("peak_rss_kb", .int(BenchClock.peakRSSKilobytes())),
        ])
        writeFile(jsonPath, json.serialized() + "\n")
        if let outputPath {
            writeBytes(outputPath, stream)
            print("stream: \(outputPath) (\(stream.count) bytes, \(frameCount) frames)")
        }
        print("json: \(jsonPath)")
    }

    /// The daemon's audio thread: a 20 ms test-tone frame encoded to Opus every 20 ms.
    private static func runOpus(until stop: StopFlag) {
        let tone = TestToneSource(channels: 1)
        guard let encoder = try? OpusEncoder(channels: 1, bitrate: 32_000) else { return }
        var sampleIndex = TestToneSource.sampleIndex(at: MonotonicClock.now())
        while !stop.isStopped {
            let captureTime = TestToneSource.time(ofSample: sampleIndex)
            MonotonicClock.sleep(until: captureTime + .milliseconds(20))
            let pcm = tone.samples(startingAt: sampleIndex, count: 960)
            sampleIndex += 960
            _ = try? encoder.encode(pcm, captureTime: captureTime)
        }
    }
}
