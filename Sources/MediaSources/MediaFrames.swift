public import RTCBase

/// Failures of the MediaSources target (frame construction, conversions, bitstream parsing).
public enum MediaSourceError: Error, Equatable, Sendable {
    /// Width/height that the format cannot hold (zero, negative, odd for 4:2:0/4:2:2, too small for the pattern).
    case invalidDimensions(width: Int, height: Int)
    /// The plane layout does not fit into the storage, or has the wrong plane count for the format.
    case invalidPlaneLayout(String)
    /// The conversion or consumer does not take this pixel format.
    case unsupportedPixelFormat(PixelFormat)
    /// A bitstream (H.264 NAL unit, Annex-B stream) ended early or holds an impossible value.
    case malformedBitstream(String)
    /// An Annex-B stream without a single access unit that starts with an IDR picture.
    case noDecodableAccessUnit
}

/// Pixel layouts a capture path hands to the encoders.
public enum PixelFormat: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// 4:2:0 planar: Y plane, U plane, V plane (V4L2 YU12 / "I420").
    case i420
    /// 4:2:0 semi-planar: Y plane, one interleaved U/V plane.
    case nv12
    /// 4:2:2 packed Y0 U Y1 V (V4L2 YUYV). Encoders here do not take it (x264 would code 4:2:2,
    /// which browsers do not decode): convert with `PixelConversion.i420(fromYUYV:)` first.
    case yuyv

    public var planeCount: Int {
        switch self {
        case .i420: 3
        case .nv12: 2
        case .yuyv: 1
        }
    }

    public var description: String {
        switch self {
        case .i420: "I420"
        case .nv12: "NV12"
        case .yuyv: "YUYV"
        }
    }

    /// The tightly packed plane layouts (stride = row bytes) of a `width`x`height` image.
    public func packedPlaneLayouts(width: Int, height: Int) -> [VideoPlaneLayout] {
        let chromaWidth = (width + 1) / 2
        let chromaHeight = (height + 1) / 2
        switch self {
        case .i420:
            let luma = VideoPlaneLayout(offset: 0, stride: width, rowBytes: width, rowCount: height)
            let u = VideoPlaneLayout(offset: width * height, stride: chromaWidth, rowBytes: chromaWidth, rowCount: chromaHeight)
            let v = VideoPlaneLayout(offset: u.offset + chromaWidth * chromaHeight, stride: chromaWidth,
                                     rowBytes: chromaWidth, rowCount: chromaHeight)
            return [luma, u, v]
        case .nv12:
            let luma = VideoPlaneLayout(offset: 0, stride: width, rowBytes: width, rowCount: height)
            let uv = VideoPlaneLayout(offset: width * height, stride: chromaWidth * 2, rowBytes: chromaWidth * 2,
                                      rowCount: chromaHeight)
            return [luma, uv]
        case .yuyv:
            return [VideoPlaneLayout(offset: 0, stride: width * 2, rowBytes: width * 2, rowCount: height)]
        }
    }

    /// Bytes of a tightly packed `width`x`height` image.
    public func packedByteCount(width: Int, height: Int) -> Int {
        packedPlaneLayouts(width: width, height: height).reduce(0) { $0 + $1.stride * $1.rowCount }
    }
}

/// Where one plane lives inside a frame's storage.
public struct VideoPlaneLayout: Sendable, Equatable, Hashable {
    /// Byte offset of the plane's first row in the storage.
    public var offset: Int
    /// Distance in bytes between the starts of two rows (≥ `rowBytes`; V4L2 `bytesperline`).
    public var stride: Int
    /// Meaningful bytes of one row.
    public var rowBytes: Int
    /// Number of rows.
    public var rowCount: Int

    public init(offset: Int, stride: Int, rowBytes: Int, rowCount: Int) {
        self.offset = offset
        self.stride = stride
        self.rowBytes = rowBytes
        self.rowCount = rowCount
    }

    /// Bytes from the first byte of the first row to the last byte of the last row.
    public var spanByteCount: Int { rowCount == 0 ? 0 : (rowCount - 1) * stride + rowBytes }
}

/// Memory owned by something else than a Swift array: a V4L2 mmap/DMABUF buffer, a pooled buffer.
/// The owner keeps `bytes` valid (and unchanged) for as long as the object lives; its deinit gives
/// the buffer back (e.g. VIDIOC_QBUF). Frames that wrap such an owner are zero-copy.
public protocol VideoFrameBuffer: AnyObject, Sendable {
    /// The whole mapped buffer; valid for the lifetime of the object.
    var bytes: UnsafeRawBufferPointer { get }
}

/// The bytes of a raw frame.
public enum VideoFrameStorage: Sendable {
    /// Synthetic frames, converted frames, copies.
    case array([UInt8])
    /// Zero-copy: memory owned by a capture buffer object.
    case buffer(any VideoFrameBuffer)

    public var byteCount: Int {
        switch self {
        case .array(let bytes): bytes.count
        case .buffer(let owner): owner.bytes.count
        }
    }

    /// Runs `body` with a pointer to all the bytes; the pointer must not escape.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        switch self {
        case .array(let bytes):
            // `withUnsafeBytes` on Array rethrows untyped; keep the typed error by capturing it.
            var result: Result<R, E>!
            bytes.withUnsafeBytes { raw in
                do throws(E) { result = .success(try body(raw)) } catch { result = .failure(error) }
            }
            return try result.get()
        case .buffer(let owner):
            return try body(owner.bytes)
        }
    }
}

/// One plane of a frame, seen through `RawVideoFrame.withPlanes`. Valid only inside the closure.
public struct VideoPlane {
    /// From the plane's first byte to the end of its last row (`(rowCount-1)*stride + rowBytes` bytes).
    public let bytes: UnsafeRawBufferPointer
    public let stride: Int
    public let rowBytes: Int
    public let rowCount: Int

    public init(bytes: UnsafeRawBufferPointer, stride: Int, rowBytes: Int, rowCount: Int) {
        self.bytes = bytes
        self.stride = stride
        self.rowBytes = rowBytes
        self.rowCount = rowCount
    }
}

/// An uncompressed picture from a camera, a converter or the test pattern.
public struct RawVideoFrame: Sendable {
    public let width: Int
    public let height: Int
    public let pixelFormat: PixelFormat
    public let storage: VideoFrameStorage
    /// One entry per plane of `pixelFormat` (Y,U,V for I420; Y,UV for NV12; YUYV for YUYV).
    public let planes: [VideoPlaneLayout]
    /// When the picture was taken (CLOCK_MONOTONIC, the clock of V4L2 buffer timestamps).
    public var captureTime: MonotonicTime
    /// Capture sequence number (V4L2 `sequence`, or the frame index for synthetic sources).
    public var sequenceNumber: UInt64

    /// A frame over any storage with explicit plane layouts (strides from the driver). Checks that
    /// every plane lies inside the storage and is large enough for the format.
    public init(width: Int, height: Int, pixelFormat: PixelFormat, storage: VideoFrameStorage,
                planes: [VideoPlaneLayout], captureTime: MonotonicTime, sequenceNumber: UInt64) throws(MediaSourceError) {
        guard width > 0, height > 0 else { throw .invalidDimensions(width: width, height: height) }
        guard planes.count == pixelFormat.planeCount else {
            throw .invalidPlaneLayout("\(pixelFormat) needs \(pixelFormat.planeCount) planes, got \(planes.count)")
        }
        let minimal = pixelFormat.packedPlaneLayouts(width: width, height: height)
        let size = storage.byteCount
        for (index, (plane, needed)) in zip(planes, minimal).enumerated() {
            guard plane.offset >= 0, plane.rowBytes >= needed.rowBytes, plane.stride >= plane.rowBytes,
                  plane.rowCount >= needed.rowCount else {
                throw .invalidPlaneLayout("plane \(index) \(plane) smaller than \(needed)")
            }
            let (end, overflow) = plane.offset.addingReportingOverflow(plane.spanByteCount)
            guard !overflow, end <= size else {
                throw .invalidPlaneLayout("plane \(index) ends at \(end), storage has \(size) bytes")
            }
        }
        self.width = width
        self.height = height
        self.pixelFormat = pixelFormat
        self.storage = storage
        self.planes = planes
        self.captureTime = captureTime
        self.sequenceNumber = sequenceNumber
    }

    /// A tightly packed frame in a Swift array (synthetic sources, conversions).
    public init(width: Int, height: Int, pixelFormat: PixelFormat, bytes: [UInt8],
                captureTime: MonotonicTime, sequenceNumber: UInt64) throws(MediaSourceError) {
        try self.init(width: width, height: height, pixelFormat: pixelFormat, storage: .array(bytes),
                      planes: pixelFormat.packedPlaneLayouts(width: width, height: height),
                      captureTime: captureTime, sequenceNumber: sequenceNumber)
    }

    /// Runs `body` with a view of every plane. The views must not escape the closure.
    public func withPlanes<R, E: Error>(_ body: ([VideoPlane]) throws(E) -> R) throws(E) -> R {
        let layouts = planes
        return try storage.withUnsafeBytes { (raw) throws(E) -> R in
            // The initializer checked that every plane lies inside the storage.
            let views = layouts.map { layout in
                VideoPlane(bytes: UnsafeRawBufferPointer(rebasing: raw[layout.offset ..< layout.offset + layout.spanByteCount]),
                           stride: layout.stride, rowBytes: layout.rowBytes, rowCount: layout.rowCount)
            }
            return try body(views)
        }
    }

    /// The bytes of the frame as a tightly packed copy (tests, debugging; not for hot paths).
    public func packedBytes() -> [UInt8] {
        withPlanes { planes in
            var out: [UInt8] = []
            out.reserveCapacity(pixelFormat.packedByteCount(width: width, height: height))
            for plane in planes {
                for row in 0 ..< plane.rowCount {
                    let start = row * plane.stride
                    out.append(contentsOf: plane.bytes[start ..< start + plane.rowBytes])
                }
            }
            return out
        }
    }
}

/// One H.264 access unit as the encoder (or a passthrough source) produced it.
public struct EncodedVideoFrame: Sendable, Equatable {
    /// The access unit in Annex-B form (start codes 00 00 01 / 00 00 00 01 before each NAL unit).
    /// Keyframes carry SPS and PPS in front of the IDR slice(s).
    public var accessUnit: [UInt8]
    public var isKeyframe: Bool
    public var captureTime: MonotonicTime
    public var width: Int
    public var height: Int
    /// The full encoding, or the reduced one made for viewers on slow links (issue 24).
    public var layer: VideoLayer

    public init(accessUnit: [UInt8], isKeyframe: Bool, captureTime: MonotonicTime, width: Int, height: Int,
                layer: VideoLayer = .full) {
        self.accessUnit = accessUnit
        self.isKeyframe = isKeyframe
        self.captureTime = captureTime
        self.width = width
        self.height = height
        self.layer = layer
    }
}

/// One Opus packet (RFC 6716), one 20 ms frame in rtcam.
public struct EncodedAudioFrame: Sendable, Equatable {
    public var packet: [UInt8]
    public var captureTime: MonotonicTime
    /// Samples per channel the packet decodes to (960 for 20 ms at 48 kHz).
    public var sampleCount: Int

    public init(packet: [UInt8], captureTime: MonotonicTime, sampleCount: Int) {
        self.packet = packet
        self.captureTime = captureTime
        self.sampleCount = sampleCount
    }
}
