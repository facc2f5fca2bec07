import MediaSources
import RTCBase
import Testing

/// The I420 downscale that CPU adaptation puts in front of x264.
@Suite struct PictureScalingTests {
    /// A packed I420 frame whose samples are `luma(x, y)`, `u(x, y)`, `v(x, y)`.
    static func frame(width: Int, height: Int, luma: (Int, Int) -> UInt8, u: (Int, Int) -> UInt8 = { _, _ in 128 },
                      v: (Int, Int) -> UInt8 = { _, _ in 128 }) throws -> RawVideoFrame {
        var bytes: [UInt8] = []
        for y in 0 ..< height { for x in 0 ..< width { bytes.append(luma(x, y)) } }
        for y in 0 ..< height / 2 { for x in 0 ..< width / 2 { bytes.append(u(x, y)) } }
        for y in 0 ..< height / 2 { for x in 0 ..< width / 2 { bytes.append(v(x, y)) } }
        return try RawVideoFrame(width: width, height: height, pixelFormat: .i420, bytes: bytes,
                                 captureTime: MonotonicTime(milliseconds: 1234), sequenceNumber: 9)
    }

    @Test func halvingIsTheMeanOfFourSamples() throws {
        let source = try Self.frame(width: 8, height: 4, luma: { x, y in UInt8(x * 20 + y * 3) },
                                    u: { x, y in UInt8(10 * x + y) }, v: { x, _ in UInt8(200 - x) })
        let scaled = try PictureScaling.i420(scaling: source, toWidth: 4, height: 2)
        #expect(scaled.width == 4 && scaled.height == 2 && scaled.pixelFormat == .i420)
        #expect(scaled.captureTime == source.captureTime && scaled.sequenceNumber == 9)
        let bytes = scaled.packedBytes()
        for y in 0 ..< 2 {
            for x in 0 ..< 4 {
                let sum = [(0, 0), (1, 0), (0, 1), (1, 1)].reduce(0) { $0 + (2 * x + $1.0) * 20 + (2 * y + $1.1) * 3 }
                #expect(Int(bytes[y * 4 + x]) == (sum + 2) / 4, "luma \(x),\(y)")
            }
        }
        // Chroma 4x2 → 2x1: U is 10x+y, its 2x2 means are 5.5 and 25.5 (rounded up); V only depends on x.
        #expect(Array(bytes[8 ..< 10]) == [6, 26])
        #expect(Array(bytes[10 ..< 12]) == [200, 198])
    }

    @Test func flatPicturesStayFlatAtAnyRatio() throws {
        let source = try Self.frame(width: 96, height: 54, luma: { _, _ in 77 }, u: { _, _ in 90 }, v: { _, _ in 160 })
        for (width, height) in [(64, 36), (32, 18), (48, 28), (94, 54), (2, 2)] {
            let bytes = try PictureScaling.i420(scaling: source, toWidth: width, height: height).packedBytes()
            #expect(bytes.count == width * height * 3 / 2)
            #expect(bytes[0 ..< width * height].allSatisfy { $0 == 77 })
            #expect(bytes[width * height ..< width * height * 5 / 4].allSatisfy { $0 == 90 })
            #expect(bytes[(width * height * 5 / 4)...].allSatisfy { $0 == 160 })
        }
    }

    /// 3:2 (1080p → 720p) interpolates: a horizontal ramp stays a ramp, monotonic and in range.
    @Test func aRampStaysARamp() throws {
        let source = try Self.frame(width: 300, height: 6, luma: { x, _ in UInt8(x * 255 / 299) })
        let bytes = try PictureScaling.i420(scaling: source, toWidth: 200, height: 4).packedBytes()
        let row = Array(bytes[0 ..< 200])
        for (later, earlier) in zip(row.dropFirst(), row) { #expect(later >= earlier) }
        #expect(row[0] <= 2 && row[199] >= 253)
        #expect(abs(Int(row[100]) - 128) <= 2)
    }

    @Test func nv12GivesTheSameAsI420() throws {
        let source = try TestPatternSource(width: 320, height: 180).frame(at: MonotonicTime(seconds: 3), index: 1)
        let fromI420 = try PictureScaling.i420(scaling: source, toWidth: 212, height: 120).packedBytes()
        let fromNV12 = try PictureScaling.i420(scaling: try PixelConversion.nv12(fromI420: source), toWidth: 212, height: 120).packedBytes()
        #expect(fromI420 == fromNV12)
        #expect(try PictureScaling.i420(scaling: source, toWidth: 320, height: 180).packedBytes() == source.packedBytes())
        #expect(throws: MediaSourceError.self) { try PictureScaling.i420(scaling: source, toWidth: 211, height: 120) }
    }

    /// Exactly half each side (the reduced video layer) takes its own loop: still the rounded mean
    /// of each 2x2 block in every plane, from I420 and from NV12.
    @Test func halvingAWholePictureIsTheMeanOfEachBlock() throws {
        let source = try TestPatternSource(width: 320, height: 180).frame(at: MonotonicTime(seconds: 3), index: 1)
        let packed = source.packedBytes()
        var expected: [UInt8] = []
        for (offset, width, height) in [(0, 320, 180), (320 * 180, 160, 90), (320 * 180 * 5 / 4, 160, 90)] {
            for y in 0 ..< height / 2 {
                for x in 0 ..< width / 2 {
                    let at = offset + 2 * y * width + 2 * x
                    let sum = Int(packed[at]) + Int(packed[at + 1]) + Int(packed[at + width]) + Int(packed[at + width + 1])
                    expected.append(UInt8((sum + 2) / 4))
                }
            }
        }
        #expect(try PictureScaling.i420(scaling: source, toWidth: 160, height: 90).packedBytes() == expected)
        let nv12 = try PixelConversion.nv12(fromI420: source)
        #expect(try PictureScaling.i420(scaling: nv12, toWidth: 160, height: 90).packedBytes() == expected)
    }

    /// Cheap next to x264: 1080p → 360p must take well under the 33 ms of a frame (measured, not
    /// asserted tightly: the machine is shared, and this is a debug build).
    @Test func fullHDToNHDIsFast() throws {
        let source = try TestPatternSource(width: 1920, height: 1080).frame(at: MonotonicTime(seconds: 3), index: 1)
        let elapsed = try ContinuousClock().measure {
            for _ in 0 ..< 10 { _ = try PictureScaling.i420(scaling: source, toWidth: 640, height: 360) }
        }
        let milliseconds = elapsed.millisecondsDouble / 10
        print("PictureScaling 1920x1080 -> 640x360: \(milliseconds) ms per frame (wall)")
        #expect(milliseconds < 30)
    }
}
