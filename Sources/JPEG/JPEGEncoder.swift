internal import CTurboJPEG

/// The one owner of a libjpeg-turbo compressor (`tjhandle`): made on the thread that encodes
/// (the video thread) and used only there. Baseline JPEG, 4:2:0, from an I420 picture as it is
/// (no colour conversion: the planes go in as YCbCr). libjpeg-turbo itself is loaded (dlopen) when
/// the first encoder is made, so an idle daemon carries none of it.
public final class JPEGEncoder {
    private let api: UnsafePointer<rtcam_turbojpeg>
    private let handle: UnsafeMutableRawPointer

    public init() throws(JPEGError) {
        api = rtcam_turbojpeg_get()
        guard let initCompress = api.pointee.init_compress else {
            throw .library("cannot load libturbojpeg.so.0 (install libturbojpeg0): "
                           + (api.pointee.load_error.map { String(cString: $0) } ?? "unknown error"))
        }
        guard let handle = initCompress() else { throw .library(Self.lastError(api, nil)) }
        self.handle = handle
    }

    deinit { _ = api.pointee.destroy?(handle) }

    /// `picture` as a JPEG of `quality` (1...100).
    public func encode(_ picture: I420Picture, quality: Int) throws(JPEGError) -> [UInt8] {
        guard let compress = api.pointee.compress_from_yuv_planes else { throw .library("not loaded") }
        var output: UnsafeMutablePointer<UInt8>? = nil
        var size: UInt = 0
        var strides: [Int32] = [Int32(picture.width), Int32(picture.chromaWidth), Int32(picture.chromaWidth)]
        let status: Int32 = picture.bytes.withUnsafeBufferPointer { bytes in
            let base = bytes.baseAddress!
            var planes: [UnsafePointer<UInt8>?] = [base, base + picture.lumaCount, base + picture.lumaCount + picture.chromaCount]
            return planes.withUnsafeMutableBufferPointer { planes in
                strides.withUnsafeMutableBufferPointer { strides in
                    compress(handle, planes.baseAddress, Int32(picture.width), strides.baseAddress,
                             Int32(picture.height), Int32(rtcam_tj_samp_420()), &output, &size,
                             Int32(max(1, min(100, quality))), rtcam_tj_flag_fastdct())
                }
            }
        }
        defer { if let output { api.pointee.free_buffer?(output) } }
        guard status == 0, let output else { throw .library(Self.lastError(api, handle)) }
        return Array(UnsafeBufferPointer(start: output, count: Int(size)))
    }

    /// Planar YCbCr at any sampling (`planes`: Y, Cb, Cr, packed at libjpeg-turbo's plane sizes,
    /// `planeSize(component:width:height:subsampling:)`; Y alone for gray) as a JPEG: for tests and
    /// tools that need JPEGs like a webcam's (4:2:2) or odd sizes.
    public func encode(planes: [[UInt8]], width: Int, height: Int, subsampling: JPEGSubsampling, quality: Int) throws(JPEGError) -> [UInt8] {
        guard let compress = api.pointee.compress_from_yuv_planes else { throw .library("not loaded") }
        let count = subsampling == .gray ? 1 : 3
        guard planes.count >= count else { throw .invalidSize("\(count) planes needed, got \(planes.count)") }
        for component in 0 ..< count {
            let size = Self.planeSize(component: component, width: width, height: height, subsampling: subsampling)
            guard planes[component].count >= size.width * size.height else {
                throw .invalidSize("plane \(component) holds \(planes[component].count) bytes, \(size.width)x\(size.height) needed")
            }
        }
        var strides: [Int32] = (0 ..< 3).map { Int32(Self.planeSize(component: min($0, count - 1), width: width, height: height, subsampling: subsampling).width) }
        var output: UnsafeMutablePointer<UInt8>? = nil
        var size: UInt = 0
        // One buffer for every plane: each plane's pointer is an offset into it.
        let joined = planes.prefix(count).reduce(into: [UInt8]()) { $0 += $1 }
        var offsets: [Int] = [0]
        for plane in planes.prefix(count).dropLast() { offsets.append(offsets.last! + plane.count) }
        while offsets.count < 3 { offsets.append(0) }
        let status: Int32 = joined.withUnsafeBufferPointer { buffer in
            var planePointers: [UnsafePointer<UInt8>?] = offsets.map { buffer.baseAddress! + $0 }
            return compress(handle, &planePointers, Int32(width), &strides, Int32(height), subsampling.turboJPEG, &output, &size,
                            Int32(max(1, min(100, quality))), 0)
        }
        defer { if let output { api.pointee.free_buffer?(output) } }
        guard status == 0, let output else { throw .library(Self.lastError(api, handle)) }
        return Array(UnsafeBufferPointer(start: output, count: Int(size)))
    }

    /// The size libjpeg-turbo gives plane `component` (0: Y, 1 and 2: Cb and Cr) of a `width`x`height`
    /// picture sampled `subsampling` (tjPlaneWidth, tjPlaneHeight: rounded up to whole MCUs' samples).
    public static func planeSize(component: Int, width: Int, height: Int, subsampling: JPEGSubsampling) -> (width: Int, height: Int) {
        guard let api = rtcam_turbojpeg_get(), let planeWidth = api.pointee.plane_width,
              let planeHeight = api.pointee.plane_height else { return (0, 0) }
        return (Int(planeWidth(Int32(component), Int32(width), subsampling.turboJPEG)),
                Int(planeHeight(Int32(component), Int32(height), subsampling.turboJPEG)))
    }

    private static func lastError(_ api: UnsafePointer<rtcam_turbojpeg>, _ handle: UnsafeMutableRawPointer?) -> String {
        guard let message = api.pointee.error_string?(handle) else { return "unknown error" }
        return String(cString: message)
    }
}
