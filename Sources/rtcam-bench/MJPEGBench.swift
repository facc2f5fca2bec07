#if canImport(Glibc)
import Glibc
#endif
import JPEG
import MediaSources
import RTCBase
import SystemSupport
import X264

/// `rtcam-bench mjpeg`: what a USB webcam's MJPEG costs the daemon's video thread when a viewer
/// needs H.264: each camera JPEG (4:2:2, as UVC webcams send it; made here from the test pattern by
/// libjpeg-turbo at quality 85, a different picture each frame) decoded to I420 with the daemon's
/// JPEGDecoder, then encoded by x264 with the daemon's settings, paced at the frame rate. Thread
/// CPU of each step, per frame.
enum MJPEGBench {
    static func run(_ options: Options) {
        let (width, height) = options.size("size", default: (1280, 720))
        let fps = options.int("fps", default: 30)
        let seconds = options.double("seconds", default: 10)
        let quality = options.int("quality", default: 85)
        let withX264 = !options.flag("no-x264")
        let jsonPath = options.string("json", default: "out/bench/mjpeg.json")
        let jpegs: [[UInt8]]
        let decoder: JPEGDecoder
        var encoder: X264Encoder?
        do {
            let pattern = try TestPatternSource(width: width, height: height)
            let coder = try JPEGEncoder()
            // 30 different camera frames, looped: 4:2:2 planes from the pattern's 4:2:0 (each chroma row twice).
            jpegs = try (0 ..< 30).map { index in
                let frame = pattern.frame(at: MonotonicTime(nanoseconds: UInt64(index) * 33_333_333), index: UInt64(index))
                let planes = frame.withPlanes { planes -> [[UInt8]] in
                    var result: [[UInt8]] = []
                    var luma: [UInt8] = []
                    for row in 0 ..< height { luma += planes[0].bytes[row * planes[0].stride ..< row * planes[0].stride + width] }
                    result.append(luma)
                    for plane in planes[1 ... 2] {
                        var chroma: [UInt8] = []
                        for row in 0 ..< height {
                            let start = (row / 2) * plane.stride
                            chroma += plane.bytes[start ..< start + width / 2]
                        }
                        result.append(chroma)
                    }
                    return result
                }
                return try coder.encode(planes: planes, width: width, height: height, subsampling: .yuv422, quality: quality)
            }
            decoder = try JPEGDecoder()
            if withX264 {
                encoder = try X264Encoder(width: width, height: height, fps: fps, bitrateKbps: 2000,
                                          profileLevelID: H264Level.constrainedBaselineProfileLevelID(width: width, height: height, framesPerSecond: fps),
                                          keyframeInterval: fps * 2)
            }
        } catch {
            fail("cannot set up: \(error)")
        }
        let interval = Duration.nanoseconds(Int64(1_000_000_000 / fps))
        let frameCount = Int(seconds * Double(fps))
        var decodeNanoseconds: [Double] = []
        var encodeNanoseconds: [Double] = []
        let startCPU = BenchClock.processCPU()
        let start = MonotonicClock.now()
        var next = start
        for index in 0 ..< frameCount {
            MonotonicClock.sleep(until: next)
            next = next + interval
            let jpeg = jpegs[index % jpegs.count]
            let cpu0 = MonotonicClock.threadCPUNanoseconds()
            let decoded: DecodedJPEG
            do {
                decoded = try jpeg.withUnsafeBytes { try decoder.decodeI420($0, captureTime: MonotonicClock.now(), sequenceNumber: UInt64(index)) }
            } catch {
                fail("decoding failed: \(error)")
            }
            let cpu1 = MonotonicClock.threadCPUNanoseconds()
            decodeNanoseconds.append(Double(cpu1 - cpu0))
            if let encoder {
                do { _ = try encoder.encode(decoded.frame, forceKeyframe: index == 0) } catch { fail("encoding failed: \(error)") }
                encodeNanoseconds.append(Double(MonotonicClock.threadCPUNanoseconds() - cpu1))
            }
        }
        let elapsed = (MonotonicClock.now() - start).millisecondsDouble / 1000
        let endCPU = BenchClock.processCPU()
        let processCPU = Double((endCPU.user + endCPU.system) - (startCPU.user + startCPU.system)) / 1e9
        func percentile(_ values: [Double], _ p: Double) -> Double {
            guard !values.isEmpty else { return 0 }
            let sorted = values.sorted()
            return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p))]
        }
        let meanJPEGBytes = jpegs.reduce(0) { $0 + $1.count } / jpegs.count
        let decodeMean = decodeNanoseconds.reduce(0, +) / Double(max(1, decodeNanoseconds.count))
        let encodeMean = encodeNanoseconds.reduce(0, +) / Double(max(1, encodeNanoseconds.count))
        let rows: [[String]] = [
            ["JPEG decode → I420", format(decodeMean / 1e6), format(percentile(decodeNanoseconds, 0.95) / 1e6),
             format(decodeMean / 1e9 * Double(fps) * 100, decimals: 1)],
        ] + (encodeNanoseconds.isEmpty ? [] : [
            ["x264 encode", format(encodeMean / 1e6), format(percentile(encodeNanoseconds, 0.95) / 1e6),
             format(encodeMean / 1e9 * Double(fps) * 100, decimals: 1)],
        ])
        printTable("MJPEG \(width)x\(height) 4:2:2 q\(quality) (\(meanJPEGBytes / 1024) KB a frame) at \(fps) fps, \(frameCount) frames",
                   header: ["step (thread CPU)", "mean ms", "p95 ms", "% of a core"], rows: rows)
        print("process CPU \(format(processCPU / elapsed * 100, decimals: 1)) % of a core over \(format(elapsed, decimals: 1)) s")
        let json = JSONValue.object([
            ("width", .int((width))), ("height", .int((height))), ("fps", .int((fps))),
            ("jpegBytes", .int((meanJPEGBytes))), ("frames", .int((frameCount))),
            ("decodeMeanMs", .double(decodeMean / 1e6)), ("decodeP95Ms", .double(percentile(decodeNanoseconds, 0.95) / 1e6)),
            ("decodeCorePercent", .double(decodeMean / 1e9 * Double(fps) * 100)),
            ("encodeMeanMs", .double(encodeMean / 1e6)), ("processCorePercent", .double(processCPU / elapsed * 100)),
        ])
        writeFile(jsonPath, json.serialized())
    }
}
