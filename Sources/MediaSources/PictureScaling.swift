
/// Making a picture smaller before it is encoded (CPU adaptation: a board that cannot encode the
/// camera's size in time encodes a smaller one). Bilinear, in 8-bit fixed point, with each output
/// sample taken at the centre of the source area it stands for: a 2:1 reduction is then exactly
/// the mean of 2x2 source samples (a box filter), other ratios interpolate between the four
/// nearest. No libyuv here; one pass over the output, reading two source rows per output row.
public enum PictureScaling {
    /// `frame` (I420 or NV12) scaled to `width`x`height` (even, positive), as a packed I420 frame
    /// with the same capture time and sequence number. A frame already that size comes back as it is.
    /// `pool`: the scaled picture goes into one of its buffers instead of a new array (the encoder's
    /// per-frame path: FrameBufferPool says why).
    public static func i420(scaling frame: RawVideoFrame, toWidth width: Int, height: Int,
                            pool: FrameBufferPool? = nil) throws(MediaSourceError) -> RawVideoFrame {
        guard width > 0, height > 0, width % 2 == 0, height % 2 == 0 else { throw .invalidDimensions(width: width, height: height) }
        if frame.width == width, frame.height == height { return frame }
        let sourceChromaSampleStep: Int
        switch frame.pixelFormat {
        case .i420: sourceChromaSampleStep = 1
        case .nv12: sourceChromaSampleStep = 2
        case .yuyv: throw .unsupportedPixelFormat(.yuyv)
        }
        let layouts = PixelFormat.i420.packedPlaneLayouts(width: width, height: height)
        let byteCount = PixelFormat.i420.packedByteCount(width: width, height: height)
        let sourceWidth = frame.width, sourceHeight = frame.height
        let sourceChromaWidth = (sourceWidth + 1) / 2, sourceChromaHeight = (sourceHeight + 1) / 2
        func scale(into out: UnsafeMutablePointer<UInt8>) {
            frame.withPlanes { planes in
                let luma = planes[0]
                scalePlane(source: luma.bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), sourceStride: luma.stride,
                           sourceWidth: sourceWidth, sourceHeight: sourceHeight, sampleStep: 1,
                           destination: out + layouts[0].offset, destinationStride: layouts[0].stride,
                           width: width, height: height)
                for chroma in 1 ... 2 {
                    // I420: planes 1 and 2. NV12: plane 1 holds U and V interleaved (V one byte on).
                    let plane = frame.pixelFormat == .i420 ? planes[chroma] : planes[1]
                    let first = plane.bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
                        + (frame.pixelFormat == .nv12 && chroma == 2 ? 1 : 0)
                    scalePlane(source: first, sourceStride: plane.stride,
                               sourceWidth: sourceChromaWidth, sourceHeight: sourceChromaHeight, sampleStep: sourceChromaSampleStep,
                               destination: out + layouts[chroma].offset, destinationStride: layouts[chroma].stride,
                               width: width / 2, height: height / 2)
                }
            }
        }
        if let pool {
            return try RawVideoFrame.i420(width: width, height: height, from: pool, captureTime: frame.captureTime,
                                          sequenceNumber: frame.sequenceNumber) { output in
                scale(into: output.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        let bytes = [UInt8](unsafeUninitializedCapacity: byteCount) { output, initialized in
            scale(into: output.baseAddress!)
            initialized = byteCount
        }
        return try RawVideoFrame(width: width, height: height, pixelFormat: .i420, bytes: bytes,
                                 captureTime: frame.captureTime, sequenceNumber: frame.sequenceNumber)
    }

    /// Where output sample `index` (of `outputCount`) reads the source (of `sourceCount` samples):
    /// the first of the two neighbours and the second one's weight in 1/256.
    struct Tap {
        var first: Int
        var second: Int
        var weight: Int
    }

    /// Output sample i covers source [i·s/o, (i+1)·s/o); its centre is at (i + ½)·s/o − ½ in
    /// sample coordinates, clamped to the picture.
    static func taps(outputCount: Int, sourceCount: Int) -> [Tap] {
        (0 ..< outputCount).map { index in
            let position = max(0, ((2 * index + 1) * sourceCount * 256) / (2 * outputCount) - 128)
            let first = min(position >> 8, sourceCount - 1)
            let second = min(first + 1, sourceCount - 1)
            return Tap(first: first, second: second, weight: first == second ? 0 : position & 255)
        }
    }

    /// Exactly half each side (the reduced video layer, issue 24): the bilinear taps above are then
    /// 128/128 both ways, so each output sample is the rounded mean of its 2x2 source samples, the
    /// same value the general path gives, in about a third of its time (no taps to look up).
    static func halvePlane(source: UnsafePointer<UInt8>, sourceStride: Int, sampleStep: Int,
                           destination: UnsafeMutablePointer<UInt8>, destinationStride: Int, width: Int, height: Int) {
        let step = sampleStep
        for row in 0 ..< height {
            let top = source + 2 * row * sourceStride
            let bottom = top + sourceStride
            let line = destination + row * destinationStride
            var column = 0
            var at = 0
            while column < width {
                let sum = Int(top[at]) + Int(top[at + step]) + Int(bottom[at]) + Int(bottom[at + step])
                line[column] = UInt8(truncatingIfNeeded: (sum + 2) >> 2)
                column += 1
                at += 2 * step
            }
        }
    }

    static func scalePlane(source: UnsafePointer<UInt8>, sourceStride: Int, sourceWidth: Int, sourceHeight: Int,
                           sampleStep: Int, destination: UnsafeMutablePointer<UInt8>, destinationStride: Int,
                           width: Int, height: Int) {
        if sourceWidth == 2 * width, sourceHeight == 2 * height {
            halvePlane(source: source, sourceStride: sourceStride, sampleStep: sampleStep, destination: destination,
                       destinationStride: destinationStride, width: width, height: height)
            return
        }
        let columns = taps(outputCount: width, sourceCount: sourceWidth)
        let firstColumn = columns.map { $0.first * sampleStep }
        let secondColumn = columns.map { $0.second * sampleStep }
        let columnWeight = columns.map(\.weight)
        let rows = taps(outputCount: height, sourceCount: sourceHeight)
        firstColumn.withUnsafeBufferPointer { firstColumn in
            secondColumn.withUnsafeBufferPointer { secondColumn in
                columnWeight.withUnsafeBufferPointer { columnWeight in
                    for (row, tap) in rows.enumerated() {
                        let top = source + tap.first * sourceStride
                        let bottom = source + tap.second * sourceStride
                        let lower = tap.weight, upper = 256 - tap.weight
                        let line = destination + row * destinationStride
                        for column in 0 ..< width {
                            let left = firstColumn[column], right = secondColumn[column]
                            let weight = columnWeight[column], rest = 256 - weight
                            let above = Int(top[left]) * rest + Int(top[right]) * weight
                            let below = Int(bottom[left]) * rest + Int(bottom[right]) * weight
                            line[column] = UInt8(truncatingIfNeeded: (above * upper + below * lower + 32768) >> 16)
                        }
                    }
                }
            }
        }
    }
}
