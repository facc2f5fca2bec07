// Swift mirrors of the V4L2 structures rtcam uses (linux/videodev2.h). They are what crosses the
// `V4L2DeviceIO` seam, so no C type appears in a public API and tests can script a fake device.
// The numeric values are the kernel's; `V4L2HeaderCheck` compares them with the header at test time.

/// A pixel format fourcc (`v4l2_fourcc(a, b, c, d)`: little-endian ASCII).
public struct V4L2PixelFormat: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// From four ASCII characters, e.g. "YUYV". Shorter strings are padded with spaces.
    public init(fourCC: String) {
        var value: UInt32 = 0
        var bytes = Array(fourCC.utf8.prefix(4))
        while bytes.count < 4 { bytes.append(0x20) }
        for (i, byte) in bytes.enumerated() { value |= UInt32(byte) << (8 * UInt32(i)) }
        rawValue = value
    }

    public static let yuyv = V4L2PixelFormat(fourCC: "YUYV")
    public static let uyvy = V4L2PixelFormat(fourCC: "UYVY")
    public static let nv12 = V4L2PixelFormat(fourCC: "NV12")
    /// Planar 4:2:0 (I420), fourcc "YU12".
    public static let yuv420 = V4L2PixelFormat(fourCC: "YU12")
    public static let mjpeg = V4L2PixelFormat(fourCC: "MJPG")
    public static let jpeg = V4L2PixelFormat(fourCC: "JPEG")
    public static let h264 = V4L2PixelFormat(fourCC: "H264")
    public static let rgb24 = V4L2PixelFormat(fourCC: "RGB3")
    /// vicodec's Fast Walsh-Hadamard Transform codec (the test board's M2M encoder).
    public static let fwht = V4L2PixelFormat(fourCC: "FWHT")

    /// The four characters, with non-printable bytes shown as '?' (the top bit marks big-endian variants).
    public var description: String {
        var text = ""
        for i in 0..<4 {
            let byte = UInt8(truncatingIfNeeded: rawValue >> (8 * UInt32(i))) & 0x7F
            text.append(byte >= 0x20 && byte < 0x7F ? Character(Unicode.Scalar(byte)) : "?")
        }
        return text
    }

    /// Compressed formats (the camera encodes): no DMABUF import into a raw-input encoder.
    public var isCompressed: Bool { self == .mjpeg || self == .jpeg || self == .h264 || self == .fwht }
}

/// `enum v4l2_buf_type` values rtcam uses.
public enum V4L2BufferType: UInt32, Sendable, CaseIterable {
    case videoCapture = 1
    case videoOutput = 2
    case videoCaptureMultiplanar = 9
    case videoOutputMultiplanar = 10
    case metaCapture = 13

    public var isMultiplanar: Bool { self == .videoCaptureMultiplanar || self == .videoOutputMultiplanar }
    public var isOutput: Bool { self == .videoOutput || self == .videoOutputMultiplanar }
}

/// `enum v4l2_memory` values rtcam uses.
public enum V4L2Memory: UInt32, Sendable {
    case mmap = 1
    case dmabuf = 4
}

/// `V4L2_CAP_*` bits.
public struct V4L2CapabilityFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let videoCapture = V4L2CapabilityFlags(rawValue: 0x0000_0001)
    public static let videoOutput = V4L2CapabilityFlags(rawValue: 0x0000_0002)
    public static let videoCaptureMultiplanar = V4L2CapabilityFlags(rawValue: 0x0000_1000)
    public static let videoOutputMultiplanar = V4L2CapabilityFlags(rawValue: 0x0000_2000)
    public static let videoM2MMultiplanar = V4L2CapabilityFlags(rawValue: 0x0000_4000)
    public static let videoM2M = V4L2CapabilityFlags(rawValue: 0x0000_8000)
    public static let metaCapture = V4L2CapabilityFlags(rawValue: 0x0080_0000)
    public static let readWrite = V4L2CapabilityFlags(rawValue: 0x0100_0000)
    public static let streaming = V4L2CapabilityFlags(rawValue: 0x0400_0000)
    public static let deviceCaps = V4L2CapabilityFlags(rawValue: 0x8000_0000)
}

/// VIDIOC_QUERYCAP result.
public struct V4L2Capability: Equatable, Sendable {
    public var driver: String
    public var card: String
    public var busInfo: String
    public var version: UInt32
    public var capabilities: V4L2CapabilityFlags
    public var deviceCapabilities: V4L2CapabilityFlags

    public init(driver: String, card: String, busInfo: String, version: UInt32 = 0,
                capabilities: V4L2CapabilityFlags, deviceCapabilities: V4L2CapabilityFlags) {
        self.driver = driver; self.card = card; self.busInfo = busInfo; self.version = version
        self.capabilities = capabilities; self.deviceCapabilities = deviceCapabilities
    }

    /// What this device node does: `device_caps` when the driver fills it (V4L2_CAP_DEVICE_CAPS),
    /// otherwise the whole-driver `capabilities`.
    public var effective: V4L2CapabilityFlags {
        capabilities.contains(.deviceCaps) ? deviceCapabilities : capabilities
    }

    public var kind: V4L2DeviceKind {
        let caps = effective
        if caps.contains(.videoM2M) || caps.contains(.videoM2MMultiplanar)
            || (caps.contains(.videoCapture) && caps.contains(.videoOutput))
            || (caps.contains(.videoCaptureMultiplanar) && caps.contains(.videoOutputMultiplanar)) {
            return .memoryToMemory
        }
        if caps.contains(.videoCapture) || caps.contains(.videoCaptureMultiplanar) { return .videoCapture }
        if caps.contains(.metaCapture) { return .metadata }
        if caps.contains(.videoOutput) || caps.contains(.videoOutputMultiplanar) { return .videoOutput }
        return .other
    }

    /// True when the node uses the multi-planar API (`*_MPLANE` buffer types).
    public var isMultiplanar: Bool {
        let caps = effective
        return caps.contains(.videoM2MMultiplanar) || caps.contains(.videoCaptureMultiplanar)
            || caps.contains(.videoOutputMultiplanar)
    }

    public var supportsStreaming: Bool { effective.contains(.streaming) }

    /// The buffer type of captured frames (camera) or of encoded output (M2M "CAPTURE" queue).
    public var captureBufferType: V4L2BufferType { isMultiplanar ? .videoCaptureMultiplanar : .videoCapture }
    /// The buffer type of raw input to an M2M device ("OUTPUT" queue).
    public var outputBufferType: V4L2BufferType { isMultiplanar ? .videoOutputMultiplanar : .videoOutput }
}

public enum V4L2DeviceKind: String, Sendable {
    case videoCapture = "capture"
    case memoryToMemory = "m2m"
    case metadata = "metadata"
    case videoOutput = "output"
    case other = "other"
}

/// VIDIOC_ENUM_FMT entry.
public struct V4L2FormatDescription: Equatable, Sendable {
    public var pixelFormat: V4L2PixelFormat
    public var description: String
    public var isCompressed: Bool
    /// Converted in software by the driver/library, not native.
    public var isEmulated: Bool

    public init(pixelFormat: V4L2PixelFormat, description: String, isCompressed: Bool = false, isEmulated: Bool = false) {
        self.pixelFormat = pixelFormat; self.description = description
        self.isCompressed = isCompressed; self.isEmulated = isEmulated
    }
}

/// VIDIOC_ENUM_FRAMESIZES: either a list of discrete sizes or one stepwise/continuous range.
public enum V4L2FrameSize: Equatable, Sendable {
    case discrete(width: UInt32, height: UInt32)
    case stepwise(minWidth: UInt32, maxWidth: UInt32, stepWidth: UInt32,
                  minHeight: UInt32, maxHeight: UInt32, stepHeight: UInt32)
    case continuous(minWidth: UInt32, maxWidth: UInt32, minHeight: UInt32, maxHeight: UInt32)

    /// Whether `width`×`height` is one of the sizes this entry describes.
    public func contains(width: UInt32, height: UInt32) -> Bool {
        switch self {
        case let .discrete(w, h): return w == width && h == height
        case let .stepwise(minW, maxW, stepW, minH, maxH, stepH):
            guard width >= minW, width <= maxW, height >= minH, height <= maxH else { return false }
            return (stepW == 0 || (width - minW) % stepW == 0) && (stepH == 0 || (height - minH) % stepH == 0)
        case let .continuous(minW, maxW, minH, maxH):
            return width >= minW && width <= maxW && height >= minH && height <= maxH
        }
    }
}

/// A time per frame (seconds = numerator / denominator), as V4L2 reports frame intervals.
public struct V4L2Fraction: Hashable, Sendable, CustomStringConvertible {
    public var numerator: UInt32
    public var denominator: UInt32
    public init(_ numerator: UInt32, _ denominator: UInt32) { self.numerator = numerator; self.denominator = denominator }

    /// Frames per second for a time-per-frame fraction.
    public var framesPerSecond: Double { numerator == 0 ? 0 : Double(denominator) / Double(numerator) }
    public var description: String { "\(numerator)/\(denominator)" }
}

/// VIDIOC_ENUM_FRAMEINTERVALS.
public enum V4L2FrameInterval: Equatable, Sendable {
    case discrete(V4L2Fraction)
    case stepwise(min: V4L2Fraction, max: V4L2Fraction, step: V4L2Fraction)
    case continuous(min: V4L2Fraction, max: V4L2Fraction)
}

/// One plane of a format (single-planar formats have exactly one).
public struct V4L2PlaneFormat: Equatable, Sendable {
    public var bytesPerLine: UInt32
    public var sizeImage: UInt32
    public init(bytesPerLine: UInt32, sizeImage: UInt32) { self.bytesPerLine = bytesPerLine; self.sizeImage = sizeImage }
}

/// `struct v4l2_format` for video (pix or pix_mp, chosen by `type`).
public struct V4L2Format: Equatable, Sendable {
    public var type: V4L2BufferType
    public var width: UInt32
    public var height: UInt32
    public var pixelFormat: V4L2PixelFormat
    /// V4L2_FIELD_NONE (1) = progressive.
    public var field: UInt32
    public var colorspace: UInt32
    /// Per plane; for single-planar types exactly one element. Zeroes ask the driver to choose.
    public var planes: [V4L2PlaneFormat]

    public init(type: V4L2BufferType, width: UInt32, height: UInt32, pixelFormat: V4L2PixelFormat,
                field: UInt32 = 1, colorspace: UInt32 = 0, planes: [V4L2PlaneFormat] = [V4L2PlaneFormat(bytesPerLine: 0, sizeImage: 0)]) {
        self.type = type; self.width = width; self.height = height; self.pixelFormat = pixelFormat
        self.field = field; self.colorspace = colorspace; self.planes = planes
    }
}

/// `V4L2_BUF_FLAG_*` bits.
public struct V4L2BufferFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let mapped = V4L2BufferFlags(rawValue: 0x0000_0001)
    public static let queued = V4L2BufferFlags(rawValue: 0x0000_0002)
    public static let done = V4L2BufferFlags(rawValue: 0x0000_0004)
    public static let keyFrame = V4L2BufferFlags(rawValue: 0x0000_0008)
    public static let pFrame = V4L2BufferFlags(rawValue: 0x0000_0010)
    public static let error = V4L2BufferFlags(rawValue: 0x0000_0040)
    public static let timestampMask = V4L2BufferFlags(rawValue: 0x0000_E000)
    public static let timestampMonotonic = V4L2BufferFlags(rawValue: 0x0000_2000)
    public static let timestampCopy = V4L2BufferFlags(rawValue: 0x0000_4000)
    public static let last = V4L2BufferFlags(rawValue: 0x0010_0000)

    /// The timestamp-type field (masked): monotonic, copy or unknown.
    public var timestampType: V4L2BufferFlags { intersection(.timestampMask) }
}

/// One plane of a buffer: for MMAP `memoryOffset` is the mmap offset, for DMABUF `dmabufFD` the fd.
public struct V4L2BufferPlane: Equatable, Sendable {
    public var length: UInt32
    public var bytesUsed: UInt32
    public var dataOffset: UInt32
    public var memoryOffset: UInt32
    public var dmabufFD: Int32

    public init(length: UInt32 = 0, bytesUsed: UInt32 = 0, dataOffset: UInt32 = 0, memoryOffset: UInt32 = 0, dmabufFD: Int32 = -1) {
        self.length = length; self.bytesUsed = bytesUsed; self.dataOffset = dataOffset
        self.memoryOffset = memoryOffset; self.dmabufFD = dmabufFD
    }
}

/// `struct v4l2_buffer` (+ its planes for the multi-planar API; single-planar buffers have one).
public struct V4L2Buffer: Equatable, Sendable {
    public var index: UInt32
    public var type: V4L2BufferType
    public var memory: V4L2Memory
    public var flags: V4L2BufferFlags
    public var field: UInt32
    /// `timestamp` as a timeval, in microseconds (sec * 1e6 + usec).
    public var timestampMicroseconds: UInt64
    public var sequence: UInt32
    public var planes: [V4L2BufferPlane]

    public init(index: UInt32, type: V4L2BufferType, memory: V4L2Memory, flags: V4L2BufferFlags = [],
                field: UInt32 = 1, timestampMicroseconds: UInt64 = 0, sequence: UInt32 = 0, planes: [V4L2BufferPlane]) {
        self.index = index; self.type = type; self.memory = memory; self.flags = flags; self.field = field
        self.timestampMicroseconds = timestampMicroseconds; self.sequence = sequence; self.planes = planes
    }

    public var totalBytesUsed: Int { planes.reduce(0) { $0 + Int($1.bytesUsed) } }
}

/// VIDIOC_S_PARM / G_PARM for video: the time per frame and whether the driver lets it be set.
public struct V4L2StreamParameters: Equatable, Sendable {
    public var timePerFrame: V4L2Fraction
    /// V4L2_CAP_TIMEPERFRAME: the driver honours `timePerFrame`.
    public var canSetTimePerFrame: Bool
    public init(timePerFrame: V4L2Fraction, canSetTimePerFrame: Bool) {
        self.timePerFrame = timePerFrame; self.canSetTimePerFrame = canSetTimePerFrame
    }
}

/// Control ids rtcam sets with VIDIOC_S_EXT_CTRLS (codec class, V4L2_CID_CODEC_BASE = 0x00990900).
public struct V4L2ControlID: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let codecClass: UInt32 = 0x0099_0000
    static let codecBase: UInt32 = 0x0099_0900
    /// Frames per group of pictures: the key frame period of codecs without H264_I_PERIOD (vicodec).
    public static let gopSize = V4L2ControlID(rawValue: codecBase + 203)
    public static let videoBitrate = V4L2ControlID(rawValue: codecBase + 207)
    public static let repeatSequenceHeader = V4L2ControlID(rawValue: codecBase + 226)
    public static let forceKeyFrame = V4L2ControlID(rawValue: codecBase + 229)
    public static let h264IFramePeriod = V4L2ControlID(rawValue: codecBase + 358)
    public static let h264Level = V4L2ControlID(rawValue: codecBase + 359)
    public static let h264Profile = V4L2ControlID(rawValue: codecBase + 363)
    /// vicodec's FWHT quantisation parameters (1 finest … 31 coarsest).
    public static let fwhtIFrameQP = V4L2ControlID(rawValue: codecBase + 290)
    public static let fwhtPFrameQP = V4L2ControlID(rawValue: codecBase + 291)

    public var description: String {
        switch self {
        case .gopSize: return "GOP_SIZE"
        case .videoBitrate: return "VIDEO_BITRATE"
        case .repeatSequenceHeader: return "REPEAT_SEQ_HEADER"
        case .forceKeyFrame: return "FORCE_KEY_FRAME"
        case .h264IFramePeriod: return "H264_I_PERIOD"
        case .h264Level: return "H264_LEVEL"
        case .h264Profile: return "H264_PROFILE"
        case .fwhtIFrameQP: return "FWHT_I_FRAME_QP"
        case .fwhtPFrameQP: return "FWHT_P_FRAME_QP"
        default: return "CID 0x" + String(rawValue, radix: 16)
        }
    }
}

/// One control value for VIDIOC_S_EXT_CTRLS.
public struct V4L2Control: Equatable, Sendable {
    public var id: V4L2ControlID
    public var value: Int32
    public init(_ id: V4L2ControlID, _ value: Int32) { self.id = id; self.value = value }
}

/// `enum v4l2_mpeg_video_h264_profile`.
public enum V4L2H264Profile: Int32, Sendable {
    case baseline = 0
    case constrainedBaseline = 1
    case main = 2
    case high = 4
}

/// `enum v4l2_mpeg_video_h264_level`.
public enum V4L2H264Level: Int32, Sendable {
    case level1_0 = 0, level1b, level1_1, level1_2, level1_3, level2_0, level2_1, level2_2
    case level3_0, level3_1, level3_2, level4_0, level4_1, level4_2, level5_0, level5_1

    /// The control value for an H.264 level_idc (31 = 3.1): the lowest that holds it, 5.1 above.
    public init(levelIDC: Int) {
        let table: [(Int, V4L2H264Level)] = [
            (10, .level1_0), (11, .level1_1), (12, .level1_2), (13, .level1_3), (20, .level2_0), (21, .level2_1),
            (22, .level2_2), (30, .level3_0), (31, .level3_1), (32, .level3_2), (40, .level4_0), (41, .level4_1),
            (42, .level4_2), (50, .level5_0), (51, .level5_1),
        ]
        self = table.first { $0.0 >= levelIDC }?.1 ?? .level5_1
    }
}

/// `V4L2_EVENT_*` types rtcam subscribes to.
public enum V4L2EventType: UInt32, Sendable {
    case endOfStream = 2
    case sourceChange = 5
}

/// `V4L2_ENC_CMD_*`.
public enum V4L2EncoderCommand: UInt32, Sendable {
    case start = 0
    case stop = 1
}

/// poll(2) event bits (same numbers as <poll.h>).
public struct V4L2PollEvents: OptionSet, Hashable, Sendable {
    public var rawValue: Int16
    public init(rawValue: Int16) { self.rawValue = rawValue }
    public static let readable = V4L2PollEvents(rawValue: 0x001)  // POLLIN
    public static let priority = V4L2PollEvents(rawValue: 0x002)  // POLLPRI (V4L2 events)
    public static let writable = V4L2PollEvents(rawValue: 0x004)  // POLLOUT
    public static let error = V4L2PollEvents(rawValue: 0x008)     // POLLERR
    public static let hangUp = V4L2PollEvents(rawValue: 0x010)    // POLLHUP
}
