public import RTCBase

/// Where the machine-readable timestamp sits in a test-pattern frame. A pure function of the
/// frame size, shared by the generator and the decoder.
///
/// The code is 40 blocks, MSB first: a start pattern `1011`, the 32-bit capture time in
/// milliseconds, and a check nibble (XOR of the eight data nibbles). A block is flat black
/// (Y=16) for 0 or flat white (Y=235) for 1, at least 16x16 pixels, on a grey band (Y=100) near
/// the top, aligned to the 16-pixel macroblock grid so H.264 keeps it intact at low bitrates.
/// Blocks run left to right and wrap onto further block rows when the width is short.
public struct TimestampStripLayout: Sendable, Equatable {
    public static let startPattern: [Bool] = [true, false, true, true]
    public static let dataBitCount = 32
    public static let checkBitCount = 4
    public static let bitCount = startPattern.count + dataBitCount + checkBitCount
    /// Margin left of and above the blocks, and below them to the moving parts.
    public static let margin = 16

    public let blockSize: Int
    public let blocksPerRow: Int
    public let blockRowCount: Int
    /// Rows 0 ..< bandHeight hold the strip (grey background plus blocks).
    public let bandHeight: Int

    /// nil when the frame is too small for the strip (narrower than 64 or too short).
    public init?(width: Int, height: Int) {
        guard width >= 64, height >= 64 else { return nil }
        let blockSize = max(16, (width / 40) & ~7)
        let blocksPerRow = (width - 2 * Self.margin) / blockSize
        guard blocksPerRow > 0 else { return nil }
        let rows = (Self.bitCount + blocksPerRow - 1) / blocksPerRow
        let band = Self.margin + rows * blockSize + Self.margin
        // Leave at least half of the picture for the moving parts.
        guard band <= height / 2 else { return nil }
        self.blockSize = blockSize
        self.blocksPerRow = blocksPerRow
        self.blockRowCount = rows
        self.bandHeight = band
    }

    /// Top-left pixel of block `index` (0 ..< bitCount).
    public func blockOrigin(_ index: Int) -> (x: Int, y: Int) {
        (Self.margin + (index % blocksPerRow) * blockSize, Self.margin + (index / blocksPerRow) * blockSize)
    }

    /// The 40 block values for a timestamp.
    public static func bits(for milliseconds: UInt32) -> [Bool] {
        var bits = startPattern
        bits.reserveCapacity(bitCount)
        for shift in stride(from: 31, through: 0, by: -1) { bits.append((milliseconds >> UInt32(shift)) & 1 == 1) }
        let check = checkNibble(milliseconds)
        for shift in stride(from: 3, through: 0, by: -1) { bits.append((check >> UInt8(shift)) & 1 == 1) }
        return bits
    }

    static func checkNibble(_ value: UInt32) -> UInt8 {
        var nibble: UInt32 = 0
        for index in 0 ..< 8 { nibble ^= (value >> UInt32(index * 4)) & 0xF }
        return UInt8(nibble)
    }
}

/// A synthetic camera: I420 frames with scrolling colour bars (motion everywhere), a bouncing box,
/// a noisy luma ramp at the bottom whose rows jitter independently every frame (like sensor
/// noise/detail: motion compensation cannot predict it, so the encoder does real work and the
/// bitrate follows the rate control), and the capture time as a block code that survives
/// compression (`TestPatternDecoder` reads it back from decoded video, which gives glass-to-glass
/// latency in end-to-end tests).
///
/// `frame(at:index:)` is pure: the picture is a function of the time only. The static background
/// and the noise texture are drawn once in `init`; a frame is row copies (memcpy), the box and the
/// blocks (memset).
public struct TestPatternSource: Sendable {
    public let width: Int
    public let height: Int
    public let layout: TimestampStripLayout
    /// Horizontal scroll speed of the background, pixels per second.
    public let scrollPixelsPerSecond: Int

    private let backgroundLuma: [UInt8]      // width x height
    private let backgroundU: [UInt8]         // width/2 x height/2
    private let backgroundV: [UInt8]
    private let boxSize: Int
    /// First luma row of the noisy ramp (even); rows from here to the bottom jitter per frame.
    private let detailStart: Int

    static let black: UInt8 = 16
    static let white: UInt8 = 235
    static let bandGrey: UInt8 = 100
    static let neutralChroma: UInt8 = 128
    static let boxColour: (y: UInt8, u: UInt8, v: UInt8) = (210, 16, 146)   // yellow

    /// Width and height must be even (4:2:0) and large enough for the timestamp strip (e.g. 320x240;
    /// the strip takes at most half of the height). `detail: false` leaves the ramp noise-free and
    /// still, for a picture that compresses to almost nothing.
    public init(width: Int, height: Int, detail: Bool = true) throws(MediaSourceError) {
        guard width > 0, height > 0, width % 2 == 0, height % 2 == 0,
              let layout = TimestampStripLayout(width: width, height: height) else {
            throw .invalidDimensions(width: width, height: height)
        }
        self.width = width
        self.height = height
        self.layout = layout
        self.scrollPixelsPerSecond = max(2, width / 4)
        self.boxSize = max(16, (height / 6) & ~1)

        // 75 % colour bars (BT.601 video range) over the upper part, a luma ramp below.
        let bars: [(y: UInt8, u: UInt8, v: UInt8)] = [
            (180, 128, 128), (162, 44, 142), (131, 156, 44), (112, 72, 58),
            (84, 184, 198), (65, 100, 212), (35, 212, 114), (16, 128, 128),
        ]
        let rampStart = (layout.bandHeight + (height - layout.bandHeight) * 2 / 3) & ~1
        self.detailStart = detail ? rampStart : height
        var noise = SeededRandom(seed: 0x5EED)
        var luma = [UInt8](repeating: 0, count: width * height)
        var u = [UInt8](repeating: Self.neutralChroma, count: width * height / 4)
        var v = [UInt8](repeating: Self.neutralChroma, count: width * height / 4)
        for x in 0 ..< width {
            let bar = bars[x * bars.count / width]
            let ramp = 16 + (219 * x) / max(1, width - 1)
            for y in 0 ..< height {
                let grain = detail ? Int(noise.next() % 49) - 24 : 0
                luma[y * width + x] = y < rampStart ? bar.y : UInt8(clamping: ramp + grain)
            }
            if x % 2 == 0 {
                for y in 0 ..< height / 2 where y * 2 < rampStart {
                    u[y * (width / 2) + x / 2] = bar.u
                    v[y * (width / 2) + x / 2] = bar.v
                }
            }
        }
        backgroundLuma = luma
        backgroundU = u
        backgroundV = v
    }

    /// The frame at `time`; `index` becomes the sequence number. Pure.
    public func frame(at time: MonotonicTime, index: UInt64) -> RawVideoFrame {
        let byteCount = width * height * 3 / 2
        let bytes = [UInt8](unsafeUninitializedCapacity: byteCount) { buffer, initialized in
            render(at: time, into: UnsafeMutableRawBufferPointer(buffer))
            initialized = byteCount
        }
        // The size matches the packed I420 layout by construction.
        return try! RawVideoFrame(width: width, height: height, pixelFormat: .i420, bytes: bytes,
                                  captureTime: time, sequenceNumber: index)
    }

    /// The frame at `time` drawn into a buffer of `pool` (the producer's every frame: no 460 kB
    /// array made and freed 30 times a second at 640x480). Pure like `frame(at:index:)`.
    public func frame(at time: MonotonicTime, index: UInt64, pool: FrameBufferPool) -> RawVideoFrame {
        // The size matches the packed I420 layout by construction.
        try! RawVideoFrame.i420(width: width, height: height, from: pool, captureTime: time, sequenceNumber: index) { output in
            render(at: time, into: output)
        }
    }

    /// Draws the frame at `time` as packed I420 into `destination` (≥ width*height*3/2 bytes),
    /// for a caller that reuses its buffers.
    public func render(at time: MonotonicTime, into destination: UnsafeMutableRawBufferPointer) {
        precondition(destination.count >= width * height * 3 / 2, "destination too small for \(width)x\(height) I420")
        let base = destination.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let lumaPlane = base
        let uPlane = base + width * height
        let vPlane = uPlane + width * height / 4
        let chromaWidth = width / 2
        let milliseconds = time.nanoseconds / 1_000_000
        let band = layout.bandHeight

        // Background, scrolled left by an even number of pixels.
        let shift = Int((milliseconds &* UInt64(scrollPixelsPerSecond) / 1000) % UInt64(width)) & ~1
        backgroundLuma.withUnsafeBufferPointer { source in
            scrollRows(source.baseAddress!, into: lumaPlane, rowWidth: width, rows: band ..< detailStart, shift: shift)
            // Detail: every row of the noisy ramp rotated by its own pseudo-random amount per frame.
            var jitter = SeededRandom(seed: milliseconds)
            for row in detailStart ..< height {
                let rowShift = Int(jitter.next() % UInt64(width))
                scrollRows(source.baseAddress!, into: lumaPlane, rowWidth: width, rows: row ..< row + 1, shift: rowShift)
            }
        }
        backgroundU.withUnsafeBufferPointer { source in
            scrollRows(source.baseAddress!, into: uPlane, rowWidth: chromaWidth, rows: band / 2 ..< height / 2, shift: shift / 2)
        }
        backgroundV.withUnsafeBufferPointer { source in
            scrollRows(source.baseAddress!, into: vPlane, rowWidth: chromaWidth, rows: band / 2 ..< height / 2, shift: shift / 2)
        }

        // Bouncing box below the strip.
        let boxX = Self.triangle(milliseconds, speed: UInt64(width / 3), span: width - boxSize) & ~1
        let boxY = band + (Self.triangle(milliseconds, speed: UInt64(height / 4), span: height - band - boxSize) & ~1)
        fill(lumaPlane, stride: width, x: boxX, y: boxY, width: boxSize, height: boxSize, value: Self.boxColour.y)
        fill(uPlane, stride: chromaWidth, x: boxX / 2, y: boxY / 2, width: boxSize / 2, height: boxSize / 2, value: Self.boxColour.u)
        fill(vPlane, stride: chromaWidth, x: boxX / 2, y: boxY / 2, width: boxSize / 2, height: boxSize / 2, value: Self.boxColour.v)

        // The timestamp strip: grey band, neutral chroma, black/white blocks.
        (lumaPlane).initialize(repeating: Self.bandGrey, count: band * width)
        uPlane.initialize(repeating: Self.neutralChroma, count: band / 2 * chromaWidth)
        vPlane.initialize(repeating: Self.neutralChroma, count: band / 2 * chromaWidth)
        let bits = TimestampStripLayout.bits(for: UInt32(truncatingIfNeeded: milliseconds))
        for (index, bit) in bits.enumerated() {
            let origin = layout.blockOrigin(index)
            fill(lumaPlane, stride: width, x: origin.x, y: origin.y, width: layout.blockSize, height: layout.blockSize,
                 value: bit ? Self.white : Self.black)
        }
    }

    /// Copies `rows` of a `rowWidth`-wide image, each rotated left by `shift`: two memcpys per row.
    private func scrollRows(_ source: UnsafePointer<UInt8>, into destination: UnsafeMutablePointer<UInt8>,
                            rowWidth: Int, rows: Range<Int>, shift: Int) {
        let head = rowWidth - shift
        for row in rows {
            let from = source + row * rowWidth
            let to = destination + row * rowWidth
            to.update(from: from + shift, count: head)
            if shift > 0 { (to + head).update(from: from, count: shift) }
        }
    }

    private func fill(_ plane: UnsafeMutablePointer<UInt8>, stride: Int, x: Int, y: Int, width: Int, height: Int, value: UInt8) {
        for row in y ..< y + height { (plane + row * stride + x).update(repeating: value, count: width) }
    }

    /// 0 → span → 0 at `speed` px/s: a bounce.
    private static func triangle(_ milliseconds: UInt64, speed: UInt64, span: Int) -> Int {
        guard span > 0 else { return 0 }
        let travelled = Int((milliseconds &* max(1, speed) / 1000) % UInt64(2 * span))
        return travelled <= span ? travelled : 2 * span - travelled
    }
}

/// Reads the timestamp code of `TestPatternSource` back from a (decoded) picture.
public enum TestPatternDecoder {
    /// The capture time in milliseconds (mod 2^32) embedded in a luma plane, or nil if the start
    /// pattern or the check nibble does not match (no pattern, or too damaged). Each block's value
    /// is the average of its centre (half the block size square), thresholded at 128.
    public static func readTimestamp(fromLuma luma: UnsafeRawBufferPointer, width: Int, height: Int, stride: Int) -> UInt32? {
        readTimestamp(luma, width: width, height: height, stride: stride, pixelStep: 1)
    }

    public static func readTimestamp(fromLuma luma: [UInt8], width: Int, height: Int, stride: Int) -> UInt32? {
        luma.withUnsafeBytes { readTimestamp(fromLuma: $0, width: width, height: height, stride: stride) }
    }

    /// From a raw frame of any `PixelFormat` (YUYV: luma is every other byte).
    public static func readTimestamp(from frame: RawVideoFrame) -> UInt32? {
        frame.withPlanes { planes in
            readTimestamp(planes[0].bytes, width: frame.width, height: frame.height, stride: planes[0].stride,
                          pixelStep: frame.pixelFormat == .yuyv ? 2 : 1)
        }
    }

    static func readTimestamp(_ luma: UnsafeRawBufferPointer, width: Int, height: Int, stride: Int, pixelStep: Int) -> UInt32? {
        guard let layout = TimestampStripLayout(width: width, height: height), stride >= width * pixelStep,
              luma.count >= (layout.bandHeight - 1) * stride + width * pixelStep else { return nil }
        let block = layout.blockSize
        let inset = block / 4
        var bits: [Bool] = []
        bits.reserveCapacity(TimestampStripLayout.bitCount)
        for index in 0 ..< TimestampStripLayout.bitCount {
            let origin = layout.blockOrigin(index)
            var sum = 0
            var count = 0
            for y in origin.y + inset ..< origin.y + block - inset {
                for x in origin.x + inset ..< origin.x + block - inset {
                    sum += Int(luma[y * stride + x * pixelStep])
                    count += 1
                }
            }
            bits.append(sum / max(1, count) >= 128)
        }
        guard Array(bits.prefix(4)) == TimestampStripLayout.startPattern else { return nil }
        var value: UInt32 = 0
        for bit in bits[4 ..< 36] { value = value << 1 | (bit ? 1 : 0) }
        var check: UInt8 = 0
        for bit in bits[36 ..< 40] { check = check << 1 | (bit ? 1 : 0) }
        return check == TimestampStripLayout.checkNibble(value) ? value : nil
    }
}
