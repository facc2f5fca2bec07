import MediaSources
import RTCBase
import Testing
import X264

/// Encodes `count` test-pattern frames at 30 fps (capture time = 1 000 ms + 33 ms × index).
struct EncodedTestStream {
    var frames: [EncodedVideoFrame] = []
    var sources: [RawVideoFrame] = []
    var stream: [UInt8] { frames.flatMap(\.accessUnit) }

    static func captureTime(_ index: Int) -> MonotonicTime { MonotonicTime(milliseconds: 1_000 + 33 * UInt64(index)) }

    static func make(count: Int, width: Int = 320, height: Int = 240, bitrateKbps: Int = 500, profileLevelID: String = "42e01f",
                     keyframeInterval: Int = 30, forceKeyframeAt: Set<Int> = [], maxSliceBytes: Int? = nil, threads: Int = 1,
                     format: (Int) -> PixelFormat = { _ in .i420 }) throws -> EncodedTestStream {
        let source = try TestPatternSource(width: width, height: height)
        let encoder = try X264Encoder(width: width, height: height, fps: 30, bitrateKbps: bitrateKbps,
                                      profileLevelID: profileLevelID, keyframeInterval: keyframeInterval,
                                      threads: threads, maxSliceBytes: maxSliceBytes)
        var result = EncodedTestStream()
        for index in 0 ..< count {
            var frame = source.frame(at: captureTime(index), index: UInt64(index))
            result.sources.append(frame)
            if format(index) == .nv12 { frame = try PixelConversion.nv12(fromI420: frame) }
            let encoded = try #require(try encoder.encode(frame, forceKeyframe: forceKeyframeAt.contains(index)))
            result.frames.append(encoded)
        }
        return result
    }

    /// `stream` (Annex B) decoded by FFmpeg into I420 pictures of `width`×`height`.
    static func decodedByFFmpeg(_ stream: [UInt8], width: Int, height: Int) throws -> [[UInt8]] {
        let ffmpeg = try ExternalTools.require("ffmpeg")
        let path = try ExternalTools.writeTemporaryFile(stream, suffix: ".h264")
        defer { ExternalTools.remove(path) }
        let decoded = try ExternalTools.run("\(ffmpeg) -v error -i \(path) -f rawvideo -pix_fmt yuv420p -")
        let pictureBytes = width * height * 3 / 2
        #expect(decoded.count % pictureBytes == 0, "\(decoded.count) bytes are not whole \(width)x\(height) pictures")
        return stride(from: 0, to: decoded.count - pictureBytes + 1, by: pictureBytes).map { Array(decoded[$0 ..< $0 + pictureBytes]) }
    }

    /// Expects `pictures` to be the test pattern of frames `firstIndex`… in order: `count` of them,
    /// each showing its own capture time (`captureTime(index)`).
    static func expectCaptureTimes(_ pictures: [[UInt8]], width: Int, height: Int, firstIndex: Int = 0, count: Int) {
        #expect(pictures.count == count, "FFmpeg decoded \(pictures.count) pictures of \(count)")
        for (offset, picture) in pictures.prefix(count).enumerated() {
            let timestamp = TestPatternDecoder.readTimestamp(fromLuma: Array(picture[0 ..< width * height]), width: width,
                                                             height: height, stride: width)
            #expect(timestamp == UInt32(captureTime(firstIndex + offset).milliseconds), "frame \(firstIndex + offset)")
        }
    }
}

@Suite struct X264EncoderTests {
    static func nalTypes(_ accessUnit: [UInt8]) -> [UInt8] { AnnexB.nalUnits(in: accessUnit).map(\.type) }

    static func sps(of accessUnit: [UInt8]) throws -> H264SequenceParameterSet {
        let unit = try #require(AnnexB.nalUnits(in: accessUnit).first { $0.type == 7 })
        return try H264SequenceParameterSet(nalUnit: accessUnit[unit.range])
    }

    @Test func keyframesParameterSetsAndForcedIDR() throws {
        let encoded = try EncodedTestStream.make(count: 30, forceKeyframeAt: [17])
        #expect(encoded.frames.count == 30)
        #expect(encoded.frames.indices.filter { encoded.frames[$0].isKeyframe } == [0, 17])
        for (index, frame) in encoded.frames.enumerated() {
            #expect(frame.accessUnit.starts(with: [0, 0, 0, 1]) || frame.accessUnit.starts(with: [0, 0, 1]))
            #expect(frame.captureTime == EncodedTestStream.captureTime(index))
            #expect(frame.width == 320 && frame.height == 240)
            let types = Self.nalTypes(frame.accessUnit)
            if frame.isKeyframe {
                // SPS and PPS come before the first IDR slice of every keyframe (b_repeat_headers).
                let sps = try #require(types.firstIndex(of: 7)), pps = try #require(types.firstIndex(of: 8))
                let idr = try #require(types.firstIndex(of: 5))
                #expect(sps < pps && pps < idr, "NAL order \(types)")
                #expect(!types.contains(1))
            } else {
                #expect(types.contains(1) && !types.contains(5) && !types.contains(7), "NAL types \(types) in frame \(index)")
            }
        }
    }

    @Test func spsMatchesTheRequestedProfileLevelID() throws {
        let encoded = try EncodedTestStream.make(count: 2)
        let accessUnit = encoded.frames[0].accessUnit
        let unit = try #require(AnnexB.nalUnits(in: accessUnit).first { $0.type == 7 })
        // The raw bytes after the NAL header: profile_idc 0x42, constraint_set0..2 (0xe0), level_idc 31.
        #expect(Array(accessUnit[unit.range].prefix(4)) == [0x67, 0x42, 0xE0, 0x1F])
        let sps = try Self.sps(of: accessUnit)
        #expect(sps.profileLevelID == "42e01f" && sps.width == 320 && sps.height == 240)
        // High profile SPS syntax (chroma_format_idc etc.) and frame cropping: 180 rows = 12 MB rows - 12.
        let high = try EncodedTestStream.make(count: 1, width: 320, height: 180, profileLevelID: "640c1f")
        let highSPS = try Self.sps(of: high.frames[0].accessUnit)
        #expect(highSPS.profileLevelID == "640c1f" && highSPS.width == 320 && highSPS.height == 180)
    }

    @Test(arguments: ["42001f", "42c01e", "4d001f", "4de01f", "640c1f", "640028", "42e00b"])
    func otherProfilesAreWrittenAndDecodable(profileLevelID: String) throws {
        let ffprobe = try ExternalTools.require("ffprobe")
        let encoded = try EncodedTestStream.make(count: 5, profileLevelID: profileLevelID)
        let sps = try Self.sps(of: encoded.frames[0].accessUnit)
        #expect(sps.profileLevelID == profileLevelID)
        let path = try ExternalTools.writeTemporaryFile(encoded.stream, suffix: ".h264")
        defer { ExternalTools.remove(path) }
        let info = ExternalTools.keyValues(try ExternalTools.run(
            "\(ffprobe) -v error -count_frames -select_streams v:0 -show_entries stream=profile,nb_read_frames -of default=noprint_wrappers=1 \(path)"))
        #expect(info["nb_read_frames"] == "5", "\(info)")
        let expectedProfile = ["42": "Baseline", "4d": "Main", "64": "High"][String(profileLevelID.prefix(2))]!
        #expect(info["profile"]?.contains(expectedProfile) == true, "\(info)")
    }

    @Test func rejectsBadProfileLevelIDsAndInputs() throws {
        for bad in ["42e01", "zz0000", "f4001f", "6440 1f", "64e01f", "420000"] {
            #expect(throws: X264Error.self, "\(bad)") {
                try X264Encoder(width: 320, height: 240, fps: 30, bitrateKbps: 500, profileLevelID: bad, keyframeInterval: 30)
            }
        }
        #expect(throws: X264Error.self) {
            try X264Encoder(width: 321, height: 240, fps: 30, bitrateKbps: 500, profileLevelID: "42e01f", keyframeInterval: 30)
        }
        let encoder = try X264Encoder(width: 320, height: 240, fps: 30, bitrateKbps: 500, profileLevelID: "42E01F", keyframeInterval: 30)
        #expect(encoder.profileLevelID == "42e01f")
        let yuyv = try RawVideoFrame(width: 320, height: 240, pixelFormat: .yuyv, bytes: [UInt8](repeating: 128, count: 320 * 480),
                                     captureTime: .zero, sequenceNumber: 0)
        #expect(throws: X264Error.unsupportedPixelFormat(.yuyv)) { try encoder.encode(yuyv, forceKeyframe: false) }
        let small = try TestPatternSource(width: 256, height: 240).frame(at: .zero, index: 0)
        #expect(throws: X264Error.frameSizeMismatch(width: 256, height: 240)) { try encoder.encode(small, forceKeyframe: false) }
    }

    @Test func bitrateChangeWhileRunning() throws {
        let source = try TestPatternSource(width: 320, height: 240)
        let encoder = try X264Encoder(width: 320, height: 240, fps: 30, bitrateKbps: 1_500, profileLevelID: "42e01f",
                                      keyframeInterval: 300)
        var sizes: [Int] = []
        for index in 0 ..< 90 {
            if index == 45 { try encoder.setBitrate(kbps: 150) }
            let frame = source.frame(at: EncodedTestStream.captureTime(index), index: UInt64(index))
            sizes.append(try #require(try encoder.encode(frame, forceKeyframe: false)).accessUnit.count)
        }
        #expect(encoder.bitrateKbps == 150)
        let before = sizes[15 ..< 45].reduce(0, +), after = sizes[60 ..< 90].reduce(0, +)
        // 30 frames = 1 s, so these are bytes per second: each within 25 % of its target (ABR + VBV cap;
        // the noisy detail of the test pattern takes all the bits it is given).
        #expect(abs(before * 8 - 1_500_000) < 1_500_000 / 4, "\(before * 8) b/s at 1500 kb/s")
        #expect(abs(after * 8 - 150_000) < 150_000 / 4, "\(after * 8) b/s after the change to 150 kb/s")
        #expect(throws: X264Error.self) { try encoder.setBitrate(kbps: 0) }
    }

    /// A camera's JPEGs decoded are full-range BT.601 (JFIF): the SPS's VUI says so, and FFmpeg reads
    /// it back (a stream from raw camera formats says nothing: limited range, the default).
    @Test func fullRangeVUIForDecodedJPEGs() throws {
        let ffprobe = try ExternalTools.require("ffprobe")
        for fullRange in [true, false] {
            let encoder = try X264Encoder(width: 320, height: 240, fps: 30, bitrateKbps: 500, profileLevelID: "42e01f",
                                          keyframeInterval: 60, fullRangeBT601: fullRange)
            var stream: [UInt8] = []
            let source = try TestPatternSource(width: 320, height: 240)
            for index in 0 ..< 3 {
                if let frame = try encoder.encode(source.frame(at: MonotonicTime(milliseconds: UInt64(index) * 33), index: UInt64(index)),
                                                  forceKeyframe: index == 0) { stream += frame.accessUnit }
            }
            let path = try ExternalTools.writeTemporaryFile(stream, suffix: ".h264")
            defer { ExternalTools.remove(path) }
            let info = ExternalTools.keyValues(try ExternalTools.run(
                "\(ffprobe) -v error -select_streams v:0 -show_entries stream=color_range,color_space,profile -of default=noprint_wrappers=1 \(path)"))
            #expect(info["profile"] == "Constrained Baseline", "\(info)")
            if fullRange {
                #expect(info["color_range"] == "pc" && info["color_space"] == "smpte170m", "\(info)")
            } else {
                #expect(info["color_range"] != "pc", "\(info)")
            }
        }
    }

    /// The independent check: FFmpeg decodes our stream, and the timestamp strip survives 500 kb/s.
    @Test func ffmpegDecodesTheStreamAndTheTimestampsSurvive() throws {
        let ffprobe = try ExternalTools.require("ffprobe")
        // Every third frame is fed as NV12: per-picture colour space switching must not corrupt chroma.
        let encoded = try EncodedTestStream.make(count: 30, forceKeyframeAt: [17], format: { $0 % 3 == 2 ? .nv12 : .i420 })
        let path = try ExternalTools.writeTemporaryFile(encoded.stream, suffix: ".h264")
        defer { ExternalTools.remove(path) }

        let info = ExternalTools.keyValues(try ExternalTools.run(
            "\(ffprobe) -v error -count_frames -select_streams v:0 -show_entries stream=codec_name,profile,level,width,height,pix_fmt,nb_read_frames -of default=noprint_wrappers=1 \(path)"))
        #expect(info["codec_name"] == "h264", "\(info)")
        #expect(info["profile"] == "Constrained Baseline", "\(info)")
        #expect(info["level"] == "31", "\(info)")
        #expect(info["width"] == "320" && info["height"] == "240", "\(info)")
        #expect(info["pix_fmt"] == "yuv420p", "\(info)")
        #expect(info["nb_read_frames"] == "30", "\(info)")

        let keyframes = String(decoding: try ExternalTools.run(
            "\(ffprobe) -v error -select_streams v:0 -show_entries frame=key_frame -of csv=p=0 \(path)"), as: UTF8.self)
            .split(separator: "\n").map { $0.split(separator: ",").first.map(String.init) ?? "" }   // "1," when side data follows
        #expect(keyframes.indices.filter { keyframes[$0] == "1" } == [0, 17], "\(keyframes)")

        let pictures = try EncodedTestStream.decodedByFFmpeg(encoded.stream, width: 320, height: 240)
        EncodedTestStream.expectCaptureTimes(pictures, width: 320, height: 240, count: 30)
        for (index, picture) in pictures.prefix(30).enumerated() {
            // Whole-picture fidelity, chroma included (catches a wrong plane layout or csp).
            let original = encoded.sources[index].packedBytes()
            let lumaPSNR = Self.psnr(picture[0 ..< 76_800], original[0 ..< 76_800])
            let chromaPSNR = Self.psnr(picture[76_800...], original[76_800...])
            #expect(lumaPSNR > 28 && chromaPSNR > 28, "frame \(index): PSNR Y \(lumaPSNR) C \(chromaPSNR)")
        }
    }

    /// Sliced threads (the daemon's RTCAM_X264_THREADS): each picture is coded as one slice per
    /// thread, still one access unit out per picture in, and FFmpeg decodes every picture with its
    /// timestamp intact.
    @Test(arguments: [1, 2, 3])
    func slicedThreadsCodeOneSlicePerThread(threads: Int) throws {
        let encoded = try EncodedTestStream.make(count: 20, forceKeyframeAt: [11], threads: threads)
        #expect(encoded.frames.count == 20)
        #expect(encoded.frames.indices.filter { encoded.frames[$0].isKeyframe } == [0, 11])
        for (index, frame) in encoded.frames.enumerated() {
            let slices = Self.nalTypes(frame.accessUnit).filter { $0 == 1 || $0 == 5 }.count
            #expect(slices == threads, "frame \(index): \(slices) slices with \(threads) threads")
            #expect(frame.captureTime == EncodedTestStream.captureTime(index))
        }
        let pictures = try EncodedTestStream.decodedByFFmpeg(encoded.stream, width: 320, height: 240)
        EncodedTestStream.expectCaptureTimes(pictures, width: 320, height: 240, count: 20)
    }

    @Test func splitterGivesBackTheEncodersAccessUnits() throws {
        // Several slices per picture (maxSliceBytes) exercise the first_mb_in_slice rule.
        for maxSliceBytes in [nil, 500] as [Int?] {
            let encoded = try EncodedTestStream.make(count: 30, forceKeyframeAt: [9], maxSliceBytes: maxSliceBytes)
            if maxSliceBytes != nil {
                #expect(encoded.frames.contains { Self.nalTypes($0.accessUnit).filter { $0 == 1 || $0 == 5 }.count > 1 })
            }
            let units = AnnexB.accessUnits(in: encoded.stream)
            #expect(units.map(\.bytes) == encoded.frames.map(\.accessUnit))
            #expect(units.map(\.isIDR) == encoded.frames.map(\.isKeyframe))

            var file = try AnnexBFileSource(stream: encoded.stream, frameRate: 30)
            #expect(file.width == 320 && file.height == 240 && file.sequenceParameterSet.profileLevelID == "42e01f")
            #expect(file.frameInterval == .nanoseconds(33_333_333))
            var replay: [EncodedVideoFrame] = []
            for index in 0 ..< 35 { replay.append(file.nextFrame(captureTime: MonotonicTime(milliseconds: UInt64(index)))) }
            #expect(replay[0 ..< 30].map(\.accessUnit) == encoded.frames.map(\.accessUnit))
            #expect(replay[30].accessUnit == encoded.frames[0].accessUnit && replay[30].isKeyframe)   // loops
            file.skipToNextKeyframe()
            #expect(file.nextFrame(captureTime: .zero).accessUnit == encoded.frames[9].accessUnit)
        }
    }

    static func psnr(_ a: ArraySlice<UInt8>, _ b: ArraySlice<UInt8>) -> Double {
        var squared = 0
        for (x, y) in zip(a, b) { let d = Int(x) - Int(y); squared += d * d }
        let mse = Double(squared) / Double(max(1, a.count))
        if mse == 0 { return 99 }
        // 10·log10(255²/mse) via log2 of the ratio (no Foundation).
        return 10 * log2Approximation(255 * 255 / mse) / 3.321928094887362
    }

    static func log2Approximation(_ value: Double) -> Double {
        var value = value, result = 0.0
        while value >= 2 { value /= 2; result += 1 }
        while value < 1 { value *= 2; result -= 1 }
        var fraction = 0.5
        for _ in 0 ..< 30 {
            value *= value
            if value >= 2 { value /= 2; result += fraction }
            fraction /= 2
        }
        return result
    }
}
