import MediaSources
import RTCBase
import V4L2

#if canImport(Glibc)
import Glibc
#endif

/// A V4L2 camera as a source of raw frames for the encoder: negotiates a 4:2:0 format when the
/// camera has one (x264 takes NV12 and I420 as they are, DESIGN.md), else YUYV (converted once per
/// frame); frames are the driver's mmap'd buffers, wrapped without a copy and handed back after
/// encoding. Runs on the video thread only.
final class V4L2VideoSource: @unchecked Sendable {
    let path: String
    private let capture: V4L2Capture
    let width: Int
    let height: Int
    let pixelFormat: PixelFormat
    private let planeLayouts: [VideoPlaneLayout]

    /// Raw formats rtcam can encode, best first.
    static let preferredFormats: [V4L2PixelFormat] = [.nv12, .yuv420, .yuyv]

    init(path: String, width: Int, height: Int, framesPerSecond: Int) throws {
        self.path = path
        capture = V4L2Capture(configuration: V4L2CaptureConfiguration(
            path: path,
            request: V4L2FormatRequest(width: UInt32(width), height: UInt32(height),
                                       preferredPixelFormats: Self.preferredFormats,
                                       framesPerSecond: UInt32(framesPerSecond))))
        try capture.start()
        guard let negotiated = capture.negotiated?.format else { throw V4L2SourceError.noFormat(path) }
        self.width = Int(negotiated.width)
        self.height = Int(negotiated.height)
        let stride = Int(negotiated.planes.first?.bytesPerLine ?? 0)
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
        default:
            capture.stop()
            throw V4L2SourceError.unsupportedFormat(path, negotiated.pixelFormat.description)
        }
    }

    var description: String { "v4l2:\(path) \(pixelFormat)" }
    var statistics: V4L2CaptureStatistics { capture.statistics }

    /// Waits up to `timeoutMilliseconds` for a frame and passes the freshest one (zero-copy) to
    /// `body`, then gives the buffer back to the driver.
    func withNextFrame(timeoutMilliseconds: Int32, _ body: (RawVideoFrame) -> Void) throws(V4L2Error) {
        guard let fd = capture.fileDescriptor else { throw .deviceGone }
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, timeoutMilliseconds)
        if ready < 0 && errno != EINTR { throw .deviceGone }
        guard ready > 0 else { return }
        guard let frame = try capture.readFreshestFrame(now: MonotonicClock.now()) else { return }
        defer { try? capture.release(frame) }
        let buffer = MappedFrameBuffer(bytes: frame.data)
        guard let raw = try? RawVideoFrame(width: width, height: height, pixelFormat: pixelFormat,
                                           storage: .buffer(buffer), planes: planeLayouts,
                                           captureTime: frame.captureTime, sequenceNumber: UInt64(frame.sequence))
        else { return }
        body(raw)
    }

    /// After the camera went away (USB unplug): true once it is back and streaming again.
    func tryReopen() -> Bool {
        do {
            try capture.reopen()
            return true
        } catch {
            return false
        }
    }

    func stop() { capture.stop() }

    /// The first V4L2 device that captures video in a format rtcam can encode.
    static func firstUsableCamera() -> String? {
        guard let paths = try? V4L2Discovery.devicePaths() else { return nil }
        for path in paths {
            guard let description = try? V4L2Discovery.describe(path: path), description.kind == .videoCapture,
                  description.formats.contains(where: { preferredFormats.contains($0.format.pixelFormat) })
            else { continue }
            return path
        }
        return nil
    }
}

/// A view of a driver buffer that stays valid until the frame is released (the encoder finishes
/// with it inside `withNextFrame`).
private final class MappedFrameBuffer: VideoFrameBuffer, @unchecked Sendable {
    let bytes: UnsafeRawBufferPointer
    init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }
}

enum V4L2SourceError: Error, CustomStringConvertible {
    case noFormat(String)
    case unsupportedFormat(String, String)

    var description: String {
        switch self {
        case let .noFormat(path): return "\(path): the driver agreed on no format"
        case let .unsupportedFormat(path, format):
            return "\(path) offers no raw format rtcam can encode (got \(format); NV12, YU12 or YUYV needed)"
        }
    }
}
