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

    private static func lastError(_ api: UnsafePointer<rtcam_turbojpeg>, _ handle: UnsafeMutableRawPointer?) -> String {
        guard let message = api.pointee.error_string?(handle) else { return "unknown error" }
        return String(cString: message)
    }
}
