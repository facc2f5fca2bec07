import MediaSources
import RTCBase
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import JPEG

/// A camera's MJPEG decoded for the H.264 encoder: real JPEGs made by libjpeg-turbo here at the
/// samplings webcams use (4:2:2 mostly, 4:2:0) and others, odd sizes, and damaged ones.
@Suite("JPEG decoding to I420 (a camera's MJPEG)")
struct JPEGDecoderTests {
    /// A picture with structure in every plane: luma ramps and a block pattern, chroma ramps that
    /// run the other way, so a misplaced row, column or plane shows.
    struct Planes {
        var width: Int
        var height: Int
        var subsampling: JPEGSubsampling
        var planes: [[UInt8]]
        /// What the source's chroma is at 4:2:0, sample (x, y) of plane 1 or 2.
        var chroma420: (Int, Int, Int) -> Int

        init(width: Int, height: Int, subsampling: JPEGSubsampling) {
            self.width = width
            self.height = height
            self.subsampling = subsampling
            let luma = JPEGEncoder.planeSize(component: 0, width: width, height: height, subsampling: subsampling)
            var y = [UInt8](repeating: 0, count: luma.width * luma.height)
            for row in 0 ..< luma.height {
                for column in 0 ..< luma.width {
                    let ramp = (column * 160 / max(1, width) + row * 60 / max(1, height))
                    let block = ((column / 16 + row / 16) % 2) * 30
                    y[row * luma.width + column] = UInt8(min(235, 16 + ramp + block))
                }
            }
            planes = [y]
            guard subsampling != .gray else {
                chroma420 = { _, _, _ in 128 }
                return
            }
            let chroma = JPEGEncoder.planeSize(component: 1, width: width, height: height, subsampling: subsampling)
            let (horizontal, vertical) = subsampling.factors
            // Chroma as a function of the luma position it covers: smooth, so a 4:2:0 average is known.
            let u: (Int, Int) -> Int = { x, y in 64 + x * 128 / max(1, width) }
            let v: (Int, Int) -> Int = { x, y in 192 - y * 128 / max(1, height) }
            for function in [u, v] {
                var plane = [UInt8](repeating: 0, count: chroma.width * chroma.height)
                for row in 0 ..< chroma.height {
                    for column in 0 ..< chroma.width {
                        plane[row * chroma.width + column] = UInt8(function(column * horizontal, row * vertical))
                    }
                }
                planes.append(plane)
            }
            chroma420 = { plane, x, y in
                let function = plane == 1 ? u : v
                // The mean over the 2x2 luma block, each luma sample's chroma being its sample's.
                var sum = 0
                for dy in 0 ... 1 {
                    for dx in 0 ... 1 {
                        sum += function(((2 * x + dx) / horizontal) * horizontal, ((2 * y + dy) / vertical) * vertical)
                    }
                }
                return (sum + 2) / 4
            }
        }

        func jpeg(quality: Int = 95) throws -> [UInt8] {
            try JPEGEncoder().encode(planes: planes, width: width, height: height, subsampling: subsampling, quality: quality)
        }

        var lumaStride: Int { JPEGEncoder.planeSize(component: 0, width: width, height: height, subsampling: subsampling).width }
    }

    /// Mean and largest absolute difference of the decoded frame from what the source says.
    static func differences(_ frame: RawVideoFrame, _ source: Planes) -> (lumaMean: Double, lumaMax: Int, chromaMean: Double, chromaMax: Int) {
        frame.withPlanes { planes in
            var lumaSum = 0, lumaMax = 0, chromaSum = 0, chromaMax = 0
            for row in 0 ..< frame.height {
                for column in 0 ..< frame.width {
                    let got = Int(planes[0].bytes[row * planes[0].stride + column])
                    let wanted = Int(source.planes[0][row * source.lumaStride + column])
                    lumaSum += abs(got - wanted)
                    lumaMax = max(lumaMax, abs(got - wanted))
                }
            }
            for plane in 1 ... 2 {
                for row in 0 ..< frame.height / 2 {
                    for column in 0 ..< frame.width / 2 {
                        let got = Int(planes[plane].bytes[row * planes[plane].stride + column])
                        let difference = abs(got - source.chroma420(plane, column, row))
                        chromaSum += difference
                        chromaMax = max(chromaMax, difference)
                    }
                }
            }
            return (Double(lumaSum) / Double(frame.width * frame.height), lumaMax,
                    Double(chromaSum) / Double(frame.width * frame.height / 2), chromaMax)
        }
    }

    @Test(arguments: [
        (1280, 720, JPEGSubsampling.yuv422), (1280, 720, .yuv420), (640, 480, .yuv422), (640, 480, .yuv420),
        (641, 361, .yuv422), (641, 361, .yuv420), (333, 97, .yuv420), (320, 240, .yuv444), (322, 242, .yuv440),
        (320, 240, .yuv411), (319, 239, .gray),
    ])
    func decodesToI420(width: Int, height: Int, subsampling: JPEGSubsampling) throws {
        let source = Planes(width: width, height: height, subsampling: subsampling)
        let jpeg = try source.jpeg()
        let decoder = try JPEGDecoder()
        let header = try jpeg.withUnsafeBytes { try decoder.header($0) }
        #expect(header == JPEGHeader(width: width, height: height, subsampling: subsampling))
        let decoded = try jpeg.withUnsafeBytes {
            try decoder.decodeI420($0, captureTime: MonotonicTime(nanoseconds: 42), sequenceNumber: 7)
        }
        #expect(decoded.subsampling == subsampling)
        #expect(decoded.warning == nil)
        let frame = decoded.frame
        // Odd sizes lose their last column and row (4:2:0 for x264 needs even ones).
        #expect(frame.width == width & ~1 && frame.height == height & ~1)
        #expect(frame.pixelFormat == .i420)
        #expect(frame.captureTime == MonotonicTime(nanoseconds: 42) && frame.sequenceNumber == 7)
        let difference = Self.differences(frame, source)
        // Quality 95: the luma comes back within a few levels; the chroma is the 2x2 mean of the source's.
        #expect(difference.lumaMean < 1.5, "luma mean error \(difference.lumaMean)")
        #expect(difference.lumaMax <= 24, "luma max error \(difference.lumaMax)")
        #expect(difference.chromaMean < 1.5, "chroma mean error \(difference.chromaMean)")
        #expect(difference.chromaMax <= 8, "chroma max error \(difference.chromaMax)")
    }

    /// The same decoder takes frames of every sampling and size one after the other (its scratch
    /// buffer grows and is reused), and a frame decoded twice gives the same bytes.
    @Test func oneDecoderManyFrames() throws {
        let decoder = try JPEGDecoder()
        let sources = [Planes(width: 320, height: 240, subsampling: .yuv422), Planes(width: 1280, height: 720, subsampling: .yuv422),
                       Planes(width: 641, height: 361, subsampling: .yuv444), Planes(width: 320, height: 240, subsampling: .yuv422)]
        var first: [UInt8]?
        for source in sources {
            let jpeg = try source.jpeg()
            let frame = try jpeg.withUnsafeBytes { try decoder.decodeI420($0, captureTime: .zero, sequenceNumber: 0) }.frame
            #expect(Self.differences(frame, source).chromaMean < 1.5)
            if source.width == 320 {
                if let first { #expect(frame.packedBytes() == first) } else { first = frame.packedBytes() }
            }
        }
    }

    @Test func boundsOfACameraBuffer() throws {
        let jpeg = try Planes(width: 64, height: 48, subsampling: .yuv422).jpeg()
        // UVC buffers: bytesused may run past the EOI with zeroes.
        #expect(try JPEGBounds.wholeImage(in: jpeg + [0, 0, 0, 0]).get() == 0 ..< jpeg.count)
        #expect(try JPEGBounds.wholeImage(in: jpeg).get() == 0 ..< jpeg.count)
        #expect(JPEGBounds.wholeImage(in: Array(jpeg.prefix(jpeg.count / 2))) == .failure(.truncated))
        #expect(JPEGBounds.wholeImage(in: Array(jpeg.dropFirst(2))) == .failure(.notJPEG))
        #expect(JPEGBounds.wholeImage(in: [UInt8]()) == .failure(.notJPEG))
        #expect(JPEGBounds.wholeImage(in: [0xFF, 0xD8, 0, 0]) == .failure(.truncated))
        let decoder = try JPEGDecoder()
        let padded = jpeg + [UInt8](repeating: 0, count: 4096)
        let frame = try padded.withUnsafeBytes { try decoder.decodeI420($0, captureTime: .zero, sequenceNumber: 0) }.frame
        #expect(frame.width == 64 && frame.height == 48)
    }

    /// What real webcams send now and then: cut-off frames, a USB transfer's garbage, damaged
    /// entropy-coded data, headers with impossible values. Each one is an error the caller counts
    /// (or a picture with libjpeg-turbo's warning), never a crash; a good frame after them decodes.
    @Test func damagedFramesAreErrorsNotCrashes() throws {
        let source = Planes(width: 320, height: 240, subsampling: .yuv422)
        let jpeg = try source.jpeg()
        let decoder = try JPEGDecoder()
        func decode(_ bytes: [UInt8]) -> Result<DecodedJPEG, JPEGDecodeError> {
            bytes.withUnsafeBytes { raw in
                Result { () throws(JPEGDecodeError) in try decoder.decodeI420(raw, captureTime: .zero, sequenceNumber: 0) }
            }
        }
        #expect(throws: JPEGDecodeError.truncated) { try decode(Array(jpeg.prefix(jpeg.count * 2 / 3))).get() }
        #expect(throws: JPEGDecodeError.notJPEG) { try decode([0x12, 0x34] + jpeg).get() }
        // Garbage between SOI and EOI: libjpeg-turbo refuses it.
        var generator = SeededGenerator(seed: 21)
        let garbage: [UInt8] = [0xFF, 0xD8] + (0 ..< 5000).map { _ in UInt8.random(in: 0 ... 255, using: &generator) } + [0xFF, 0xD9]
        guard case let .failure(error) = decode(garbage) else {
            Issue.record("garbage decoded")
            return
        }
        #expect(error.description.contains("corrupt"))
        // A frame header that says 0x0.
        var zeroSize = jpeg
        if let sof = (2 ..< zeroSize.count - 9).first(where: { zeroSize[$0] == 0xFF && zeroSize[$0 + 1] == 0xC0 }) {
            zeroSize[sof + 5] = 0; zeroSize[sof + 6] = 0
        }
        #expect(throws: JPEGDecodeError.self) { try decode(zeroSize).get() }
        // Damaged entropy data (the EOI intact): a picture with a warning, or an error.
        var outcomes = (decoded: 0, warned: 0, failed: 0)
        let scanStart = (2 ..< jpeg.count - 1).first { jpeg[$0] == 0xFF && jpeg[$0 + 1] == 0xDA }!
        for _ in 0 ..< 300 {
            var damaged = jpeg
            for _ in 0 ..< Int.random(in: 1 ... 8, using: &generator) {
                // Anywhere: headers (tables, frame header) as well as the scan.
                let index = Int.random(in: 2 ..< damaged.count - 2, using: &generator)
                damaged[index] = UInt8.random(in: 0 ... 255, using: &generator)
            }
            if Bool.random(using: &generator) { damaged.removeSubrange(Int.random(in: scanStart ..< damaged.count - 2, using: &generator) ..< damaged.count - 2) }
            switch decode(damaged) {
            case let .success(decoded):
                if decoded.warning != nil { outcomes.warned += 1 } else { outcomes.decoded += 1 }
                #expect(decoded.frame.width >= 2 && decoded.frame.height >= 2)
            case .failure:
                outcomes.failed += 1
            }
        }
        #expect(outcomes.failed > 0 && outcomes.warned > 0, "\(outcomes)")
        let after = try decode(jpeg).get()
        #expect(after.warning == nil && Self.differences(after.frame, source).lumaMean < 1.5)
    }

    /// A webcam's MJPEG without Huffman tables: the T.81 K.3 tables put back before the scan give
    /// exactly the JPEG libjpeg-turbo made (it writes the same four tables there), and a JPEG that
    /// has them is left alone.
    @Test(arguments: [JPEGSubsampling.yuv422, .yuv420, .yuv444])
    func missingHuffmanTablesPutBack(subsampling: JPEGSubsampling) throws {
        let jpeg = try Planes(width: 96, height: 64, subsampling: subsampling).jpeg()
        #expect(MotionJPEGTables.completed(jpeg) == nil)
        // Drop every DHT segment, as such cameras send it.
        var stripped: [UInt8] = [0xFF, 0xD8]
        var index = 2
        var dropped = 0
        while index + 4 <= jpeg.count {
            let marker = jpeg[index + 1]
            let length = Int(jpeg[index + 2]) << 8 | Int(jpeg[index + 3])
            if marker == 0xDA {
                stripped += jpeg[index...]
                break
            }
            if marker == 0xC4 { dropped += 1 } else { stripped += jpeg[index ..< index + 2 + length] }
            index += 2 + length
        }
        #expect(dropped >= 1 && stripped.count < jpeg.count)
        #expect(MotionJPEGTables.completed(stripped) == jpeg)
        // libjpeg-turbo decodes the stripped one too (its own fallback): the same picture.
        let decoder = try JPEGDecoder()
        let original = try jpeg.withUnsafeBytes { try decoder.decodeI420($0, captureTime: .zero, sequenceNumber: 0) }.frame.packedBytes()
        let fromStripped = try stripped.withUnsafeBytes { try decoder.decodeI420($0, captureTime: .zero, sequenceNumber: 0) }.frame.packedBytes()
        #expect(original == fromStripped)
        #expect(MotionJPEGTables.completed([0xFF, 0xD8, 0x12]) == nil)
        #expect(MotionJPEGTables.completed(Array(stripped.prefix(20))) == nil)
    }

    /// A benchmark line: one 1280x720 4:2:2 frame (a UVC webcam's MJPEG) decoded to I420 (run with
    /// `swift test -c release --filter JPEGDecoderTests` for the release figure).
    @Test func decodeCostAt720p() throws {
        let source = Planes(width: 1280, height: 720, subsampling: .yuv422)
        let jpeg = try source.jpeg(quality: 85)
        let decoder = try JPEGDecoder()
        let count = 30
        let start = MonotonicTime(nanoseconds: UInt64(clock_gettime_nsec_np_monotonic()))
        for index in 0 ..< count {
            _ = try jpeg.withUnsafeBytes { try decoder.decodeI420($0, captureTime: .zero, sequenceNumber: UInt64(index)) }
        }
        let elapsed = Double(clock_gettime_nsec_np_monotonic() - start.nanoseconds) / 1e6
        print("JPEG decode 1280x720 4:2:2 (\(jpeg.count) bytes) to I420: \(String(format3(elapsed / Double(count)))) ms a frame, \(String(format3(elapsed / Double(count) * 30 / 10))) % of a core at 30 fps")
        #expect(elapsed / Double(count) < 200)
    }
}

private func clock_gettime_nsec_np_monotonic() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

private func format3(_ value: Double) -> String {
    let scaled = Int((value * 100).rounded())
    return "\(scaled / 100).\(scaled % 100 < 10 ? "0" : "")\(scaled % 100)"
}

/// SplitMix64: deterministic randomness for the damaged frames.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
