/// Pixel format conversions for cameras that cannot give 4:2:0.
///
/// x264 codes the chroma format of its input (YUYV → 4:2:2, High 4:2:2 profile, which browsers do
/// not decode; see DESIGN.md), so a YUYV-only camera goes through `i420(fromYUYV:)` once per frame.
/// That costs one pass over the frame (~1.8 MB read + 1.4 MB written at 720p): count it.
public enum PixelConversion {
    /// YUYV 4:2:2 packed → I420 4:2:0 planar. Chroma of two rows is averaged (vertical 2:1).
    /// `pool`: into one of its buffers instead of a new array (a camera's every frame).
    public static func i420(fromYUYV frame: RawVideoFrame, pool: FrameBufferPool? = nil) throws(MediaSourceError) -> RawVideoFrame {
        guard frame.pixelFormat == .yuyv else { throw .unsupportedPixelFormat(frame.pixelFormat) }
        let width = frame.width, height = frame.height
        guard width % 2 == 0, height % 2 == 0 else { throw .invalidDimensions(width: width, height: height) }
        if let pool {
            return try RawVideoFrame.i420(width: width, height: height, from: pool, captureTime: frame.captureTime,
                                          sequenceNumber: frame.sequenceNumber) { output in
                _ = frame.withPlanes { planes in
                    convertYUYVToI420(source: planes[0].bytes, sourceStride: planes[0].stride,
                                      width: width, height: height, destination: output)
                }
            }
        }
        let byteCount = PixelFormat.i420.packedByteCount(width: width, height: height)
        let bytes = frame.withPlanes { planes in
            [UInt8](unsafeUninitializedCapacity: byteCount) { output, initialized in
                let destination = UnsafeMutableRawBufferPointer(output)
                convertYUYVToI420(source: planes[0].bytes, sourceStride: planes[0].stride,
                                  width: width, height: height, destination: destination)
                initialized = byteCount
            }
        }
        return try RawVideoFrame(width: width, height: height, pixelFormat: .i420, bytes: bytes,
                                 captureTime: frame.captureTime, sequenceNumber: frame.sequenceNumber)
    }

    /// The conversion over raw memory (for a capture loop that converts into a reused buffer).
    /// `destination` receives a packed I420 image and must hold `width*height*3/2` bytes; `source`
    /// must hold `(height-1)*sourceStride + 2*width` bytes. Width and height must be even.
    /// Returns false (and writes nothing) when the sizes do not fit.
    @discardableResult
    public static func convertYUYVToI420(source: UnsafeRawBufferPointer, sourceStride: Int, width: Int, height: Int,
                                         destination: UnsafeMutableRawBufferPointer) -> Bool {
        guard width > 0, height > 0, width % 2 == 0, height % 2 == 0, sourceStride >= width * 2,
              source.count >= (height - 1) * sourceStride + width * 2,
              destination.count >= width * height * 3 / 2,
              let sourceBase = source.baseAddress?.assumingMemoryBound(to: UInt8.self),
              let destinationBase = destination.baseAddress?.assumingMemoryBound(to: UInt8.self)
        else { return false }
        let chromaWidth = width / 2
        let lumaPlane = destinationBase
        let uPlane = destinationBase + width * height
        let vPlane = uPlane + chromaWidth * (height / 2)
        var row = 0
        while row < height {
            let top = sourceBase + row * sourceStride
            let bottom = top + sourceStride
            let lumaTop = lumaPlane + row * width
            let lumaBottom = lumaTop + width
            let uRow = uPlane + (row / 2) * chromaWidth
            let vRow = vPlane + (row / 2) * chromaWidth
            for pair in 0 ..< chromaWidth {
                let t = top + pair * 4
                let b = bottom + pair * 4
                lumaTop[pair * 2] = t[0]
                lumaTop[pair * 2 + 1] = t[2]
                lumaBottom[pair * 2] = b[0]
                lumaBottom[pair * 2 + 1] = b[2]
                uRow[pair] = UInt8((UInt16(t[1]) + UInt16(b[1]) + 1) >> 1)
                vRow[pair] = UInt8((UInt16(t[3]) + UInt16(b[3]) + 1) >> 1)
            }
            row += 2
        }
        return true
    }

    /// I420 → NV12 (interleave U and V); for capture paths and tests that need NV12 input.
    public static func nv12(fromI420 frame: RawVideoFrame) throws(MediaSourceError) -> RawVideoFrame {
        guard frame.pixelFormat == .i420 else { throw .unsupportedPixelFormat(frame.pixelFormat) }
        let width = frame.width, height = frame.height
        let byteCount = PixelFormat.nv12.packedByteCount(width: width, height: height)
        let layouts = PixelFormat.nv12.packedPlaneLayouts(width: width, height: height)
        let bytes = frame.withPlanes { planes in
            [UInt8](unsafeUninitializedCapacity: byteCount) { output, initialized in
                let out = output.baseAddress!
                for row in 0 ..< height {
                    let from = planes[0].bytes.baseAddress! + row * planes[0].stride
                    (out + row * width).update(from: from.assumingMemoryBound(to: UInt8.self), count: width)
                }
                let uv = layouts[1]
                for row in 0 ..< uv.rowCount {
                    let u = (planes[1].bytes.baseAddress! + row * planes[1].stride).assumingMemoryBound(to: UInt8.self)
                    let v = (planes[2].bytes.baseAddress! + row * planes[2].stride).assumingMemoryBound(to: UInt8.self)
                    let destination = out + uv.offset + row * uv.stride
                    for column in 0 ..< uv.rowBytes / 2 {
                        destination[column * 2] = u[column]
                        destination[column * 2 + 1] = v[column]
                    }
                }
                initialized = byteCount
            }
        }
        return try RawVideoFrame(width: width, height: height, pixelFormat: .nv12, bytes: bytes,
                                 captureTime: frame.captureTime, sequenceNumber: frame.sequenceNumber)
    }
}
