internal import CTurboJPEG
public import MediaSources
public import RTCBase

/// How a JPEG's chroma is sampled against its luma (the frame header's sampling factors).
public enum JPEGSubsampling: String, Sendable, Equatable, CaseIterable {
    case yuv444 = "4:4:4"
    case yuv422 = "4:2:2"
    case yuv420 = "4:2:0"
    case yuv440 = "4:4:0"
    case yuv411 = "4:1:1"
    case gray = "gray"

    /// Luma samples per chroma sample across and down.
    var factors: (horizontal: Int, vertical: Int) {
        switch self {
        case .yuv444: (1, 1)
        case .yuv422: (2, 1)
        case .yuv420: (2, 2)
        case .yuv440: (1, 2)
        case .yuv411: (4, 1)
        case .gray: (1, 1)
        }
    }

    init?(turboJPEG value: Int32) {
        switch value {
        case rtcam_tj_samp_444(): self = .yuv444
        case rtcam_tj_samp_422(): self = .yuv422
        case rtcam_tj_samp_420(): self = .yuv420
        case rtcam_tj_samp_440(): self = .yuv440
        case rtcam_tj_samp_411(): self = .yuv411
        case rtcam_tj_samp_gray(): self = .gray
        default: return nil
        }
    }

    var turboJPEG: Int32 {
        switch self {
        case .yuv444: rtcam_tj_samp_444()
        case .yuv422: rtcam_tj_samp_422()
        case .yuv420: rtcam_tj_samp_420()
        case .yuv440: rtcam_tj_samp_440()
        case .yuv411: rtcam_tj_samp_411()
        case .gray: rtcam_tj_samp_gray()
        }
    }
}

/// Why a JPEG (a camera's MJPEG frame) could not be decoded: the caller counts it and skips the frame.
public enum JPEGDecodeError: Error, Equatable, Sendable, CustomStringConvertible {
    /// It does not begin with SOI (FF D8): not a JPEG at all.
    case notJPEG
    /// No EOI (FF D9) at its end (trailing zero padding allowed): the camera sent part of a frame.
    case truncated
    /// Smaller than 2x2, or a colour model the encoder cannot take (CMYK).
    case unsupported(String)
    /// libjpeg-turbo stopped on it (its message).
    case corrupt(String)

    public var description: String {
        switch self {
        case .notJPEG: return "not a JPEG (no SOI marker)"
        case .truncated: return "truncated JPEG (no EOI marker at the end)"
        case let .unsupported(reason): return "unsupported JPEG: \(reason)"
        case let .corrupt(message): return "corrupt JPEG: \(message)"
        }
    }
}

/// A JPEG's frame header, read without decoding it.
public struct JPEGHeader: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var subsampling: JPEGSubsampling
}

/// A JPEG decoded to the 4:2:0 picture the H.264 encoder takes.
public struct DecodedJPEG: Sendable {
    /// I420, the JPEG's size rounded down to even numbers (x264's 4:2:0 needs them; a last odd
    /// column or row is left out). Its luma plane is libjpeg-turbo's own, so strides may exceed widths.
    public var frame: RawVideoFrame
    /// The JPEG's own sampling (4:2:2 from most UVC webcams: its chroma was averaged down to 4:2:0).
    public var subsampling: JPEGSubsampling
    /// libjpeg-turbo's warning when it decoded the picture but found something off in it (e.g.
    /// "extraneous bytes before marker 0xd9", which some webcams send in every frame): the picture is used.
    public var warning: String?
}

/// Where a whole JPEG lies in a buffer a camera filled: from SOI (FF D8) to the last EOI (FF D9).
/// UVC drivers hand over buffers whose `bytesused` may include zero padding after the EOI; a buffer
/// without an EOI at its end is a frame the camera (or the USB transfer) cut short.
public enum JPEGBounds {
    public static func wholeImage(in bytes: UnsafeRawBufferPointer) -> Result<Range<Int>, JPEGDecodeError> {
        guard bytes.count >= 4, bytes[0] == 0xFF, bytes[1] == 0xD8 else { return .failure(.notJPEG) }
        var end = bytes.count
        while end > 2, bytes[end - 1] == 0 { end -= 1 }
        guard end >= 4, bytes[end - 2] == 0xFF, bytes[end - 1] == 0xD9 else { return .failure(.truncated) }
        return .success(0 ..< end)
    }

    public static func wholeImage(in bytes: [UInt8]) -> Result<Range<Int>, JPEGDecodeError> {
        bytes.withUnsafeBytes { wholeImage(in: $0) }
    }
}

/// The one owner of a libjpeg-turbo decompressor (`tjhandle`), made on the thread that decodes
/// (the video thread, while a viewer's H.264 needs pictures) and used only there. A camera's MJPEG
/// frame is decoded to planar YCbCr at its own sampling (tjDecompressToYUVPlanes: no colour
/// conversion) straight into the output picture's luma plane and, for 4:2:0, its chroma planes; any
/// other sampling's chroma goes through a scratch buffer and is averaged down to 4:2:0.
public final class JPEGDecoder {
    private let api: UnsafePointer<rtcam_turbojpeg>
    private var handle: UnsafeMutableRawPointer
    /// The JPEG's chroma planes when they are not 4:2:0 (reused from frame to frame).
    private var chromaScratch: [UInt8] = []

    public init() throws(JPEGError) {
        api = rtcam_turbojpeg_get()
        guard let initDecompress = api.pointee.init_decompress else {
            throw .library("cannot load libturbojpeg.so.0 (install libturbojpeg0): "
                           + (api.pointee.load_error.map { String(cString: $0) } ?? "unknown error"))
        }
        guard let handle = initDecompress() else { throw .library(Self.lastError(api, nil)) }
        self.handle = handle
    }

    deinit { _ = api.pointee.destroy?(handle) }

    /// After libjpeg-turbo stopped on a JPEG, its decompressor may be left mid-header (TurboJPEG 2.1
    /// then skips reading the next JPEG's header and fails on every later frame): a new one.
    private func replaceHandleAfterError() {
        guard let fresh = api.pointee.init_decompress?() else { return }   // out of memory: keep the old one
        _ = api.pointee.destroy?(handle)
        handle = fresh
    }

    /// The frame header of `jpeg` (its whole bytes, SOI to EOI).
    public func header(_ jpeg: UnsafeRawBufferPointer) throws(JPEGDecodeError) -> JPEGHeader {
        guard let base = jpeg.baseAddress, jpeg.count >= 4 else { throw .notJPEG }
        var width: Int32 = 0, height: Int32 = 0, subsampling: Int32 = -1, colourspace: Int32 = -1
        let status = api.pointee.decompress_header!(handle, base.assumingMemoryBound(to: UInt8.self), UInt(jpeg.count),
                                                    &width, &height, &subsampling, &colourspace)
        guard status == 0 else {
            let message = Self.lastError(api, handle)
            replaceHandleAfterError()
            throw .corrupt(message)
        }
        guard let sampling = JPEGSubsampling(turboJPEG: subsampling) else {
            throw .unsupported("chroma sampling \(subsampling) (CMYK or unusual factors)")
        }
        return JPEGHeader(width: Int(width), height: Int(height), subsampling: sampling)
    }

    /// `bytes` (a camera's buffer: the JPEG is looked for in it with `JPEGBounds`) as an I420 frame.
    /// `pool`: the picture goes into one of its buffers instead of a new array (a camera's every frame).
    public func decodeI420(_ bytes: UnsafeRawBufferPointer, captureTime: MonotonicTime,
                           sequenceNumber: UInt64, pool: FrameBufferPool? = nil) throws(JPEGDecodeError) -> DecodedJPEG {
        let range = try JPEGBounds.wholeImage(in: bytes).get()
        let jpeg = UnsafeRawBufferPointer(rebasing: bytes[range])
        let header = try header(jpeg)
        let width = header.width & ~1, height = header.height & ~1
        guard width >= 2, height >= 2 else { throw .unsupported("\(header.width)x\(header.height) is too small") }
        let sampling = header.subsampling
        let tjSampling = sampling.turboJPEG
        let lumaStride = Int(api.pointee.plane_width!(0, Int32(header.width), tjSampling))
        let lumaRows = Int(api.pointee.plane_height!(0, Int32(header.height), tjSampling))
        let outputChromaWidth = width / 2, outputChromaHeight = height / 2
        // The JPEG's own chroma planes (none for gray).
        let jpegChromaWidth = sampling == .gray ? 0 : Int(api.pointee.plane_width!(1, Int32(header.width), tjSampling))
        let jpegChromaRows = sampling == .gray ? 0 : Int(api.pointee.plane_height!(1, Int32(header.height), tjSampling))
        let direct = sampling == .yuv420
        let chromaStride = direct ? jpegChromaWidth : outputChromaWidth
        let chromaRows = direct ? jpegChromaRows : outputChromaHeight
        let lumaBytes = lumaStride * lumaRows
        let total = lumaBytes + 2 * chromaStride * chromaRows
        if !direct, sampling != .gray, chromaScratch.count < 2 * jpegChromaWidth * jpegChromaRows {
            chromaScratch = [UInt8](repeating: 0, count: 2 * jpegChromaWidth * jpegChromaRows)
        }
        var status: Int32 = 0
        var warning: String?
        let api = self.api, handle = self.handle
        // The fast integer inverse DCT: x264 codes the picture again right after, lossy anyway.
        let flags = rtcam_tj_flag_fastdct()
        func decode(into out: UnsafeMutablePointer<UInt8>) {
            let source = jpeg.baseAddress!.assumingMemoryBound(to: UInt8.self)
            if direct || sampling == .gray {
                var planes: [UnsafeMutablePointer<UInt8>?] = [out, out + lumaBytes, out + lumaBytes + chromaStride * chromaRows]
                var strides: [Int32] = [Int32(lumaStride), Int32(chromaStride), Int32(chromaStride)]
                status = api.pointee.decompress_to_yuv_planes!(handle, source, UInt(jpeg.count), &planes,
                                                               Int32(header.width), &strides, Int32(header.height), flags)
                if sampling == .gray {
                    (out + lumaBytes).initialize(repeating: 128, count: 2 * chromaStride * chromaRows)
                }
            } else {
                chromaScratch.withUnsafeMutableBufferPointer { scratch in
                    let u = scratch.baseAddress!, v = u + jpegChromaWidth * jpegChromaRows
                    var planes: [UnsafeMutablePointer<UInt8>?] = [out, u, v]
                    var strides: [Int32] = [Int32(lumaStride), Int32(jpegChromaWidth), Int32(jpegChromaWidth)]
                    status = api.pointee.decompress_to_yuv_planes!(handle, source, UInt(jpeg.count), &planes,
                                                                   Int32(header.width), &strides, Int32(header.height), flags)
                    guard status == 0 || api.pointee.error_code!(handle) == rtcam_tj_error_warning() else { return }
                    let factors = sampling.factors
                    for (index, plane) in [u, v].enumerated() {
                        Self.downsample(plane, stride: jpegChromaWidth, factors: factors,
                                        into: out + lumaBytes + index * chromaStride * chromaRows,
                                        width: outputChromaWidth, height: outputChromaHeight)
                    }
                }
            }
        }
        let storage: VideoFrameStorage
        if let pool {
            let buffer = pool.take(byteCount: total)
            decode(into: buffer.mutableBytes.baseAddress!.assumingMemoryBound(to: UInt8.self))
            storage = .buffer(buffer)
        } else {
            storage = .array([UInt8](unsafeUninitializedCapacity: total) { buffer, initialized in
                decode(into: buffer.baseAddress!)
                initialized = total   // on failure the bytes are never read: the array is dropped below
            })
        }
        if status != 0 {
            let message = Self.lastError(api, handle)
            guard api.pointee.error_code!(handle) == rtcam_tj_error_warning() else {
                replaceHandleAfterError()
                throw .corrupt(message)
            }
            warning = message
        }
        let layouts = [
            VideoPlaneLayout(offset: 0, stride: lumaStride, rowBytes: width, rowCount: height),
            VideoPlaneLayout(offset: lumaBytes, stride: chromaStride, rowBytes: outputChromaWidth, rowCount: outputChromaHeight),
            VideoPlaneLayout(offset: lumaBytes + chromaStride * chromaRows, stride: chromaStride,
                             rowBytes: outputChromaWidth, rowCount: outputChromaHeight),
        ]
        do {
            let frame = try RawVideoFrame(width: width, height: height, pixelFormat: .i420, storage: storage,
                                          planes: layouts, captureTime: captureTime, sequenceNumber: sequenceNumber)
            return DecodedJPEG(frame: frame, subsampling: sampling, warning: warning)
        } catch {
            throw .unsupported("\(error)")   // the layouts above always fit: not reached
        }
    }

    /// One 4:2:0 chroma plane from a chroma plane sampled `factors` (luma samples per chroma sample):
    /// each output sample is the mean of the source samples over the 2x2 luma block it stands for.
    static func downsample(_ source: UnsafePointer<UInt8>, stride: Int, factors: (horizontal: Int, vertical: Int),
                           into output: UnsafeMutablePointer<UInt8>, width: Int, height: Int) {
        if factors == (2, 1) {
            // 4:2:2 (UVC webcams): same columns, two rows averaged.
            for row in 0 ..< height {
                let first = source + 2 * row * stride, second = first + stride
                let target = output + row * width
                for column in 0 ..< width {
                    target[column] = UInt8((UInt16(first[column]) + UInt16(second[column]) + 1) >> 1)
                }
            }
            return
        }
        let left = (0 ..< width).map { (2 * $0) / factors.horizontal }
        let right = (0 ..< width).map { (2 * $0 + 1) / factors.horizontal }
        for row in 0 ..< height {
            let top = source + ((2 * row) / factors.vertical) * stride
            let bottom = source + ((2 * row + 1) / factors.vertical) * stride
            let target = output + row * width
            for column in 0 ..< width {
                let sum = UInt16(top[left[column]]) + UInt16(top[right[column]]) + UInt16(bottom[left[column]]) + UInt16(bottom[right[column]])
                target[column] = UInt8((sum + 2) >> 2)
            }
        }
    }

    private static func lastError(_ api: UnsafePointer<rtcam_turbojpeg>, _ handle: UnsafeMutableRawPointer?) -> String {
        guard let message = api.pointee.error_string?(handle) else { return "unknown error" }
        return String(cString: message)
    }
}
