import MediaSources
import RTCBase
import Testing

/// The passthrough path: a camera that sends SPS/PPS only at stream start, joined late.
@Suite struct CameraH264StreamTests {
    /// x264's stream with SPS/PPS removed from every access unit but the first, like a UVC camera.
    static func cameraLikeStream(count: Int, keyframeInterval: Int) throws -> [[UInt8]] {
        let encoded = try EncodedTestStream.make(count: count, keyframeInterval: keyframeInterval)
        return encoded.frames.enumerated().map { index, frame in
            guard index > 0 else { return frame.accessUnit }
            var stripped: [UInt8] = []
            for unit in AnnexB.nalUnits(in: frame.accessUnit) where unit.type != 7 && unit.type != 8 {
                stripped += [0, 0, 0, 1] + frame.accessUnit[unit.range]
            }
            return stripped
        }
    }

    static func feed(_ stream: inout CameraH264Stream, _ buffer: [UInt8], _ index: Int) -> EncodedVideoFrame? {
        buffer.withUnsafeBytes { stream.frame(fromBuffer: $0, captureTime: EncodedTestStream.captureTime(index), width: 320, height: 240) }
    }

    @Test func idrsGetTheParameterSetsAgainAndALateJoinerDecodes() throws {
        let buffers = try Self.cameraLikeStream(count: 40, keyframeInterval: 15)
        var stream = CameraH264Stream()
        var frames: [EncodedVideoFrame] = []
        for (index, buffer) in buffers.enumerated() {
            if let frame = Self.feed(&stream, buffer, index) { frames.append(frame) }
        }
        #expect(frames.count == 40)
        #expect(frames.indices.filter { frames[$0].isKeyframe } == [0, 15, 30])
        for frame in frames where frame.isKeyframe {
            let types = AnnexB.nalUnits(in: frame.accessUnit).map(\.type)
            #expect(Array(types.prefix(2)) == [7, 8] && types.contains(5), "keyframe NAL types \(types)")
            #expect(types.filter { $0 == 7 }.count == 1 && types.filter { $0 == 8 }.count == 1, "no duplicates: \(types)")
        }
        #expect(stream.parsedSequenceParameterSet?.profileLevelID == "42e01f")
        #expect(stream.parsedSequenceParameterSet?.width == 320)

        // A viewer that joins at the second IDR: what it receives decodes on its own (FFmpeg).
        let late = frames[15...].flatMap(\.accessUnit)
        let ffprobe = try ExternalTools.require("ffprobe")
        let path = try ExternalTools.writeTemporaryFile(late, suffix: ".h264")
        defer { ExternalTools.remove(path) }
        let values = ExternalTools.keyValues(try ExternalTools.run(
            "\(ffprobe) -v error -count_frames -select_streams v:0 -show_entries stream=width,height,nb_read_frames -of default=noprint_wrappers=1 \(path)"))
        #expect(values["width"] == "320" && values["height"] == "240")
        #expect(values["nb_read_frames"] == "25")
    }

    @Test func idrBeforeAnyParameterSetIsDroppedAndHeaderOnlyBuffersAreCounted() throws {
        let buffers = try Self.cameraLikeStream(count: 16, keyframeInterval: 15)
        var stream = CameraH264Stream()
        // Joined the camera after its first access unit: P-frames pass (the viewer waits for an
        // IDR anyway), the IDR at 15 has no SPS/PPS known yet and is dropped.
        var kept: [EncodedVideoFrame] = []
        for index in 1 ..< buffers.count {
            if let frame = Self.feed(&stream, buffers[index], index) { kept.append(frame) }
        }
        #expect(stream.idrsWithoutParameterSets == 1)
        #expect(kept.count == 14 && !kept.contains { $0.isKeyframe })
        #expect(Self.feed(&stream, [0, 0, 0, 1, 0x67, 0x42, 0xE0, 0x1F], 99) == nil)
        #expect(Self.feed(&stream, [], 100) == nil)
        #expect(Self.feed(&stream, [1, 2, 3, 0, 0, 1], 101) == nil)
        #expect(stream.buffersWithoutPicture == 3)
    }

    @Test func randomBuffersNeverTrap() {
        var random = SeededRandom(seed: 7)
        var stream = CameraH264Stream()
        for index in 0 ..< 3_000 {
            var bytes = (0 ..< Int.random(in: 0 ... 64, using: &random)).map { _ in UInt8.random(in: 0 ... 255, using: &random) }
            if index % 3 == 0 { bytes.insert(contentsOf: [0, 0, 1, [0x65, 0x67, 0x68, 0x41][index % 4]], at: 0) }
            _ = Self.feed(&stream, bytes, index)
        }
    }
}
