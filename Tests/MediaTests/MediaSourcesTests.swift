import MediaSources
import RTCBase
import Testing

@Suite struct TestPatternTests {
    @Test(arguments: [(320, 240), (640, 480), (1280, 720)])
    func timestampRoundTripOnRawFrames(width: Int, height: Int) throws {
        let source = try TestPatternSource(width: width, height: height)
        let times: [UInt64] = [0, 1, 33, 1_000, 65_535, 123_456_789, 4_294_967_295, 4_294_967_296 + 77]
        for (index, milliseconds) in times.enumerated() {
            let frame = source.frame(at: MonotonicTime(milliseconds: milliseconds), index: UInt64(index))
            #expect(frame.pixelFormat == .i420 && frame.width == width && frame.height == height)
            #expect(frame.sequenceNumber == UInt64(index))
            let luma = frame.packedBytes()
            let read = TestPatternDecoder.readTimestamp(fromLuma: luma, width: width, height: height, stride: width)
            #expect(read == UInt32(truncatingIfNeeded: milliseconds), "at \(milliseconds) ms")
            #expect(TestPatternDecoder.readTimestamp(from: frame) == UInt32(truncatingIfNeeded: milliseconds))
        }
    }

    @Test func blocksAreLargeAndTheStripFitsTheTop() throws {
        for (width, height) in [(320, 240), (640, 360), (1280, 720), (1920, 1080)] {
            let layout = try #require(TimestampStripLayout(width: width, height: height))
            #expect(layout.blockSize >= 16 && layout.blockSize % 8 == 0)
            let last = layout.blockOrigin(TimestampStripLayout.bitCount - 1)
            #expect(last.x + layout.blockSize <= width && last.y + layout.blockSize <= layout.bandHeight)
            #expect(layout.bandHeight <= height / 2)
        }
        #expect(TimestampStripLayout(width: 32, height: 32) == nil)
    }

    @Test func frameIsPureAndMoves() throws {
        let source = try TestPatternSource(width: 320, height: 240)
        let a = source.frame(at: MonotonicTime(milliseconds: 1234), index: 0).packedBytes()
        let b = source.frame(at: MonotonicTime(milliseconds: 1234), index: 7).packedBytes()
        #expect(a == b)
        let later = source.frame(at: MonotonicTime(milliseconds: 1534), index: 0).packedBytes()
        // Motion below the strip: background scroll and box.
        let band = source.layout.bandHeight * 320
        let changed = zip(a[band ..< 320 * 240], later[band ..< 320 * 240]).filter { $0 != $1 }.count
        #expect(changed > 320 * 240 / 10)
    }

    @Test func noTimestampInOtherPictures() {
        let flat = [UInt8](repeating: 200, count: 320 * 240)
        #expect(TestPatternDecoder.readTimestamp(fromLuma: flat, width: 320, height: 240, stride: 320) == nil)
        var random = SeededRandom(seed: 7)
        var hits = 0
        for _ in 0 ..< 50 {
            let noise = (0 ..< 320 * 240).map { _ in UInt8.random(in: 0 ... 255, using: &random) }
            if TestPatternDecoder.readTimestamp(fromLuma: noise, width: 320, height: 240, stride: 320) != nil { hits += 1 }
        }
        #expect(hits == 0)
        // Too small buffers and sizes never trap.
        #expect(TestPatternDecoder.readTimestamp(fromLuma: [1, 2, 3], width: 320, height: 240, stride: 320) == nil)
        #expect(TestPatternDecoder.readTimestamp(fromLuma: [], width: -5, height: 0, stride: 0) == nil)
    }

    @Test func corruptedBlockIsRejectedByTheCheckNibble() throws {
        let source = try TestPatternSource(width: 320, height: 240)
        var luma = Array(source.frame(at: MonotonicTime(milliseconds: 5000), index: 0).packedBytes()[0 ..< 320 * 240])
        let layout = source.layout
        let origin = layout.blockOrigin(20)   // a data bit
        let old = luma[(origin.y + layout.blockSize / 2) * 320 + origin.x + layout.blockSize / 2]
        for y in origin.y ..< origin.y + layout.blockSize {
            for x in origin.x ..< origin.x + layout.blockSize { luma[y * 320 + x] = old > 128 ? 16 : 235 }
        }
        #expect(TestPatternDecoder.readTimestamp(fromLuma: luma, width: 320, height: 240, stride: 320) == nil)
    }

    @Test func paddedStrideAndOtherFormats() throws {
        let source = try TestPatternSource(width: 320, height: 240)
        let frame = source.frame(at: MonotonicTime(milliseconds: 424_242), index: 0)
        let packed = frame.packedBytes()
        // Luma with a 384-byte stride (like a V4L2 buffer with padding).
        var padded = [UInt8](repeating: 0, count: 384 * 240)
        for row in 0 ..< 240 { padded.replaceSubrange(row * 384 ..< row * 384 + 320, with: packed[row * 320 ..< row * 320 + 320]) }
        #expect(TestPatternDecoder.readTimestamp(fromLuma: padded, width: 320, height: 240, stride: 384) == 424_242)
        let nv12 = try PixelConversion.nv12(fromI420: frame)
        #expect(nv12.pixelFormat == .nv12)
        #expect(TestPatternDecoder.readTimestamp(from: nv12) == 424_242)
    }

    @Test func invalidSizesThrow() {
        #expect(throws: MediaSourceError.invalidDimensions(width: 321, height: 240)) { try TestPatternSource(width: 321, height: 240) }
        #expect(throws: MediaSourceError.self) { try TestPatternSource(width: 40, height: 40) }
    }
}

@Suite struct RawVideoFrameTests {
    final class FakeMappedBuffer: VideoFrameBuffer, @unchecked Sendable {
        let storage: UnsafeMutableRawBufferPointer
        var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(storage) }
        init(count: Int, fill: UInt8) {
            storage = .allocate(byteCount: count, alignment: 64)
            storage.initializeMemory(as: UInt8.self, repeating: fill)
        }
        deinit { storage.deallocate() }
    }

    @Test func wrapsForeignBufferWithStrides() throws {
        let buffer = FakeMappedBuffer(count: 2 * 64 * 16, fill: 9)
        let frame = try RawVideoFrame(width: 48, height: 16, pixelFormat: .yuyv, storage: .buffer(buffer),
                                      planes: [VideoPlaneLayout(offset: 0, stride: 128, rowBytes: 96, rowCount: 16)],
                                      captureTime: .zero, sequenceNumber: 3)
        let sum = frame.withPlanes { planes in planes[0].bytes.reduce(0) { $0 + Int($1) } }
        #expect(sum == 9 * (15 * 128 + 96))
    }

    @Test func rejectsLayoutsOutsideTheStorage() {
        #expect(throws: MediaSourceError.self) {
            try RawVideoFrame(width: 16, height: 16, pixelFormat: .i420, bytes: [UInt8](repeating: 0, count: 100),
                              captureTime: .zero, sequenceNumber: 0)
        }
        #expect(throws: MediaSourceError.self) {
            try RawVideoFrame(width: 16, height: 16, pixelFormat: .nv12, storage: .array([UInt8](repeating: 0, count: 384)),
                              planes: [VideoPlaneLayout(offset: 0, stride: 16, rowBytes: 16, rowCount: 16)],
                              captureTime: .zero, sequenceNumber: 0)
        }
        #expect(throws: MediaSourceError.self) {
            try RawVideoFrame(width: 16, height: 16, pixelFormat: .yuyv, storage: .array([UInt8](repeating: 0, count: 512)),
                              planes: [VideoPlaneLayout(offset: Int.max - 10, stride: 32, rowBytes: 32, rowCount: 16)],
                              captureTime: .zero, sequenceNumber: 0)
        }
    }

    @Test func yuyvToI420() throws {
        // YUYV with the same chroma on both rows of a pair converts back to the exact I420.
        let source = try TestPatternSource(width: 320, height: 240)
        let i420 = source.frame(at: MonotonicTime(milliseconds: 777), index: 1)
        let packed = i420.packedBytes()
        var yuyv = [UInt8](repeating: 0, count: 320 * 240 * 2)
        for y in 0 ..< 240 {
            for x in stride(from: 0, to: 320, by: 2) {
                let base = y * 640 + x * 2
                yuyv[base] = packed[y * 320 + x]
                yuyv[base + 1] = packed[320 * 240 + (y / 2) * 160 + x / 2]
                yuyv[base + 2] = packed[y * 320 + x + 1]
                yuyv[base + 3] = packed[320 * 240 + 160 * 120 + (y / 2) * 160 + x / 2]
            }
        }
        let frame = try RawVideoFrame(width: 320, height: 240, pixelFormat: .yuyv, bytes: yuyv,
                                      captureTime: MonotonicTime(milliseconds: 777), sequenceNumber: 1)
        #expect(TestPatternDecoder.readTimestamp(from: frame) == 777)
        let converted = try PixelConversion.i420(fromYUYV: frame)
        #expect(converted.packedBytes() == packed)
        #expect(converted.captureTime == frame.captureTime && converted.sequenceNumber == 1)
        #expect(throws: MediaSourceError.unsupportedPixelFormat(.i420)) { try PixelConversion.i420(fromYUYV: i420) }
    }
}

@Suite struct TestToneTests {
    @Test func clicksAtWholeSecondsAndSineElsewhere() {
        let tone = TestToneSource(channels: 1)
        #expect(abs(Int(tone.amplitude) - 8231) <= 2)    // −12 dBFS of 32767
        let samples = tone.samples(startingAt: 0, count: 96_000)
        // Clicks: full scale for 5 ms at 0 s and 1 s.
        for second in [0, 48_000] {
            #expect(samples[second ..< second + 240].allSatisfy { abs(Int($0)) == 32767 })
            #expect(abs(Int(samples[second + 240])) <= Int(tone.amplitude))
        }
        let quiet = samples[240 ..< 48_000]
        #expect(quiet.allSatisfy { abs(Int($0)) <= Int(tone.amplitude) })
        #expect(quiet.map { abs(Int($0)) }.max()! >= Int(tone.amplitude) - 2)
        // 440 Hz: 880 zero crossings per second (counted over 47 000 samples without clicks).
        var crossings = 0
        for index in 1_000 ..< 48_000 where (samples[index - 1] < 0) != (samples[index] < 0) { crossings += 1 }
        #expect(abs(crossings - 880 * 47 / 48) <= 3)
    }

    @Test func pureAndStereo() {
        let mono = TestToneSource(channels: 1)
        let stereo = TestToneSource(channels: 2)
        let whole = mono.samples(startingAt: 47_000, count: 2_000)
        let part = mono.samples(startingAt: 47_500, count: 100)
        #expect(Array(whole[500 ..< 600]) == part)
        let both = stereo.samples(startingAt: 47_000, count: 2_000)
        #expect(both.count == 4_000)
        for index in 0 ..< 2_000 { #expect(both[2 * index] == whole[index] && both[2 * index + 1] == whole[index]) }
        // Before zero and far away: still clicks on whole seconds.
        #expect(mono.samples(startingAt: -48_000, count: 1)[0] == 32767)
        #expect(mono.samples(startingAt: 48_000 * 86_400, count: 1)[0] == 32767)
        #expect(TestToneSource.sampleIndex(at: MonotonicTime(milliseconds: 1_500)) == 72_000)
        #expect(TestToneSource.time(ofSample: 72_000) == MonotonicTime(milliseconds: 1_500))
    }
}

@Suite struct AnnexBTests {
    static func nal(_ type: UInt8, _ body: [UInt8], long: Bool = true) -> [UInt8] {
        (long ? [0, 0, 0, 1] : [0, 0, 1]) + [0x60 | type] + body
    }

    @Test func splitsOnNewPicturesAndParameterSets() {
        let idr = Self.nal(7, [0x42, 0xE0, 0x1F, 0xAB]) + Self.nal(8, [0xCE, 0x38]) + Self.nal(5, [0x88, 1, 2])
            + Self.nal(5, [0x40, 3], long: false)                        // second slice (first_mb != 0)
        let p1 = Self.nal(1, [0x9A, 4, 5], long: false) + Self.nal(1, [0x20, 6], long: false)
        let p2 = Self.nal(9, [0x10]) + Self.nal(1, [0x9A, 7])
        let p3 = Self.nal(6, [5, 1, 0]) + Self.nal(1, [0x9A, 8, 0, 0])   // SEI opens a new AU; trailing zeros stay with it
        let units = AnnexB.accessUnits(in: idr + p1 + p2 + p3)
        #expect(units.map(\.bytes) == [idr, p1, p2, Array((p3).dropLast(2))])
        #expect(units.map(\.isIDR) == [true, false, false, false])
        #expect(units.map(\.containsSequenceParameterSet) == [true, false, false, false])
    }

    @Test func garbageNeverTraps() {
        var random = SeededRandom(seed: 42)
        let valid = Self.nal(7, [0x42, 0xE0, 0x1F, 0xAB, 0xCD]) + Self.nal(5, [0x88, 1, 0, 0, 3, 2]) + Self.nal(1, [0x9A, 4])
        for _ in 0 ..< 3_000 {
            var bytes = valid
            for _ in 0 ..< Int.random(in: 1 ... 6, using: &random) {
                switch Int.random(in: 0 ..< 3, using: &random) {
                case 0: bytes[Int.random(in: 0 ..< bytes.count, using: &random)] = UInt8.random(in: 0 ... 255, using: &random)
                case 1: bytes = Array(bytes.prefix(Int.random(in: 0 ... bytes.count, using: &random)))
                default: bytes.insert(UInt8.random(in: 0 ... 3, using: &random), at: Int.random(in: 0 ... bytes.count, using: &random))
                }
                if bytes.isEmpty { break }
            }
            let units = AnnexB.accessUnits(in: bytes)
            for unit in AnnexB.nalUnits(in: bytes) where unit.type == 7 {
                _ = try? H264SequenceParameterSet(nalUnit: bytes[unit.range])
            }
            #expect(units.reduce(0) { $0 + $1.bytes.count } <= bytes.count)
        }
        #expect(AnnexB.accessUnits(in: []).isEmpty)
        #expect(AnnexB.accessUnits(in: [0, 0, 1]).isEmpty)
        #expect(throws: MediaSourceError.noDecodableAccessUnit) { try AnnexBFileSource(stream: [0, 0, 1, 0x41, 0x9A], frameRate: 30) }
    }
}
