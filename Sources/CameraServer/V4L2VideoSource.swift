import MediaSources
import RTCBase
import V4L2

#if canImport(Glibc)
import Glibc
import SystemSupport
#endif

/// A V4L2 camera as a source of frames: raw pictures for an encoder (a 4:2:0 format when the
/// camera has one: x264 takes NV12 and I420 as they are, DESIGN.md; else YUYV, converted once per
/// frame), the camera's own JPEGs (MJPEG: decoded for x264), or its own H.264 for passthrough. Frames are the driver's mmap'd buffers (with
/// their DMABUF fds for a hardware encoder), wrapped without a copy and handed back after use.
/// Runs on the video thread only.
final class V4L2VideoSource: @unchecked Sendable {
    let path: String
    private let capture: V4L2Capture
    let width: Int
    let height: Int
    /// The raw layout for x264 (nil when the camera delivers H.264).
    let pixelFormat: PixelFormat?
    /// What the driver agreed on: the pixel format and the stride a hardware encoder must import.
    let negotiatedFormat: V4L2PixelFormat
    let bytesPerLine: UInt32
    let planeLayouts: [VideoPlaneLayout]

    /// Raw formats rtcam can encode, best first.
    static let preferredFormats: [V4L2PixelFormat] = [.nv12, .yuv420, .yuyv]

    /// `formats`: what to ask the camera for, best first (`[.h264]` for passthrough).
    init(path: String, width: Int, height: Int, framesPerSecond: Int, formats: [V4L2PixelFormat] = preferredFormats) throws {
        self.path = path
        capture = V4L2Capture(configuration: V4L2CaptureConfiguration(
            path: path,
            request: V4L2FormatRequest(width: UInt32(width), height: UInt32(height),
                                       preferredPixelFormats: formats,
                                       framesPerSecond: UInt32(framesPerSecond))))
        try capture.start()
        guard let negotiated = capture.negotiated?.format else { throw V4L2SourceError.noFormat(path) }
        guard formats.contains(negotiated.pixelFormat) else {
            capture.stop()
            throw V4L2SourceError.unsupportedFormat(path, negotiated.pixelFormat.description,
                                                    wanted: formats.map(\.description))
        }
        self.width = Int(negotiated.width)
        self.height = Int(negotiated.height)
        negotiatedFormat = negotiated.pixelFormat
        bytesPerLine = negotiated.planes.first?.bytesPerLine ?? 0
        let stride = Int(bytesPerLine)
        switch negotiated.pixelFormat {
        case .nv12:
            pixelFormat = .nv12
            let lumaStride = max(stride, self.width)
            planeLayouts = [
                VideoPlaneLayout(offset: 0, stride: lumaStride, rowBytes: self.width, rowCount: self.height),
                VideoPlaneLayout(offset: lumaStride * self.height, stride: lumaStride, rowBytes: self.width,
                                 rowCount: self.height / 2),
            ]
        case .yuv420:
            pixelFormat = .i420
            let lumaStride = max(stride, self.width)
            let chromaStride = lumaStride / 2
            let chromaOffset = lumaStride * self.height
            planeLayouts = [
                VideoPlaneLayout(offset: 0, stride: lumaStride, rowBytes: self.width, rowCount: self.height),
                VideoPlaneLayout(offset: chromaOffset, stride: chromaStride, rowBytes: self.width / 2, rowCount: self.height / 2),
                VideoPlaneLayout(offset: chromaOffset + chromaStride * self.height / 2, stride: chromaStride,
                                 rowBytes: self.width / 2, rowCount: self.height / 2),
            ]
        case .yuyv:
            pixelFormat = .yuyv
            planeLayouts = [VideoPlaneLayout(offset: 0, stride: max(stride, self.width * 2), rowBytes: self.width * 2,
                                             rowCount: self.height)]
        case .h264, .mjpeg, .jpeg:
            pixelFormat = nil
            planeLayouts = []
        default:
            capture.stop()
            throw V4L2SourceError.unsupportedFormat(path, negotiated.pixelFormat.description, wanted: formats.map(\.description))
        }
    }

    var description: String { "v4l2:\(path) \(negotiatedFormat)" }
    var statistics: V4L2CaptureStatistics { capture.statistics }
    var deliversH264: Bool { negotiatedFormat == .h264 }
    /// The camera sends its own JPEGs (MJPEG): passed through for stills, decoded for x264.
    var deliversJPEG: Bool { negotiatedFormat == .mjpeg || negotiatedFormat == .jpeg }

    /// Waits up to `timeoutMilliseconds` for a frame and passes the driver's buffer itself (mapped
    /// planes and DMABUF fds: a hardware encoder imports it, passthrough reads the H.264 in it) to
    /// `body`, then gives it back to the driver.
    func withNextCapturedFrame(timeoutMilliseconds: Int32, _ body: (V4L2Frame) -> Void) throws(V4L2Error) {
        guard let frame = try waitForFreshestFrame(timeoutMilliseconds: timeoutMilliseconds) else { return }
        defer { try? capture.release(frame) }
        body(frame)
    }

    private func waitForFreshestFrame(timeoutMilliseconds: Int32) throws(V4L2Error) -> V4L2Frame? {
        guard let fd = capture.fileDescriptor else { throw .deviceGone }
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, timeoutMilliseconds)
        if ready < 0 && errno != EINTR { throw .deviceGone }
        guard ready > 0 else { return nil }
        return try capture.readFreshestFrame(now: MonotonicClock.now())
    }

    /// A camera that encodes: asks for an IDR now (V4L2_CID_MPEG_VIDEO_FORCE_KEY_FRAME). UVC
    /// cameras usually lack the control; then streaming is stopped and started again on the open
    /// device, which makes a camera begin with an IDR (the caller rate-limits this).
    func forceKeyFrame() throws(V4L2Error) -> KeyFrameRequestOutcome {
        if hasForceKeyFrameControl {
            do {
                try capture.setControls([V4L2Control(.forceKeyFrame, 1)])
                return .control
            } catch {
                if error == .deviceGone { throw error }
                hasForceKeyFrameControl = false  // EINVAL/ENOTTY: not this driver; don't ask again
            }
        }
        try capture.restartStreaming()
        return .streamRestarted
    }
    private var hasForceKeyFrameControl = true

    enum KeyFrameRequestOutcome: Equatable { case control, streamRestarted }

    /// A camera that encodes: its bitrate (V4L2_CID_MPEG_VIDEO_BITRATE), where the driver has it.
    func setEncoderBitrate(bitsPerSecond: Int32) throws(V4L2Error) {
        try capture.setControls([V4L2Control(.videoBitrate, bitsPerSecond)])
    }

    /// Waits up to `timeoutMilliseconds` for a frame and passes the freshest one (zero-copy) to
    /// `body`, then gives the buffer back to the driver. A buffer that does not hold the negotiated
    /// picture (a driver that filled less than a frame) comes as the failure, for the caller to count.
    func withNextFrame(timeoutMilliseconds: Int32,
                       _ body: (Result<RawVideoFrame, MediaSourceError>) -> Void) throws(V4L2Error) {
        guard let pixelFormat else { throw .invalidState("the camera delivers H.264, not raw pictures") }
        guard let frame = try waitForFreshestFrame(timeoutMilliseconds: timeoutMilliseconds) else { return }
        defer { try? capture.release(frame) }
        let buffer = MappedFrameBuffer(bytes: frame.data)
        body(Result { () throws(MediaSourceError) in
            try RawVideoFrame(width: width, height: height, pixelFormat: pixelFormat, storage: .buffer(buffer),
                              planes: planeLayouts, captureTime: frame.captureTime, sequenceNumber: UInt64(frame.sequence))
        })
    }

    /// After the camera went away (USB unplug): opens it again and streams, or throws why not (the
    /// node is not back yet: `.open(ENOENT)`). A device that comes back with another format or size
    /// than the one negotiated at start is refused (the encoder and the viewers' SDP expect that one).
    func reopen() throws {
        try capture.reopen()
        guard let format = capture.negotiated?.format, format.pixelFormat == negotiatedFormat,
              Int(format.width) == width, Int(format.height) == height else {
            let got = capture.negotiated.map { "\($0.format.pixelFormat) \($0.format.width)x\($0.format.height)" } ?? "nothing"
            capture.stop()
            throw V4L2SourceError.cameChangedBack(path, got: got, wanted: "\(negotiatedFormat) \(width)x\(height)")
        }
    }

    func stop() { capture.stop() }

    /// A format rtcam can encode (a raw one, or MJPEG decoded) or pass through (H.264 the camera encodes itself).
    static func canStream(_ format: V4L2PixelFormat) -> Bool {
        preferredFormats.contains(format) || format == .h264 || format == .mjpeg
    }

    /// The first V4L2 device that captures video in a format rtcam can encode or pass through.
    static func firstUsableCamera(in devices: [CameraDescription]) -> CameraDescription? {
        devices.first { description in
            description.kind == .videoCapture && description.formats.contains { canStream($0.format.pixelFormat) }
        }
    }
}

/// A view of a driver buffer that stays valid until the frame is released (the encoder finishes
/// with it inside `withNextFrame`).
final class MappedFrameBuffer: VideoFrameBuffer, @unchecked Sendable {
    let bytes: UnsafeRawBufferPointer
    init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }
}

enum V4L2SourceError: Error, CustomStringConvertible {
    case noFormat(String)
    case unsupportedFormat(String, String, wanted: [String])
    case cameChangedBack(String, got: String, wanted: String)

    var description: String {
        switch self {
        case let .noFormat(path): return "\(path): the driver agreed on no format"
        case let .unsupportedFormat(path, format, wanted):
            return "\(path) offers none of the formats needed (got \(format); wanted \(wanted.joined(separator: ", ")))"
        case let .cameChangedBack(path, got, wanted):
            return "\(path) came back as \(got), not the \(wanted) it streamed before"
        }
    }
}
