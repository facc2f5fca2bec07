/// What the caller wants from a camera.
public struct V4L2FormatRequest: Equatable, Sendable {
    public var width: UInt32
    public var height: UInt32
    /// Acceptable pixel formats, best first, e.g. [.nv12, .yuv420, .yuyv, .mjpeg, .h264].
    public var preferredPixelFormats: [V4L2PixelFormat]
    /// 0 leaves the driver's rate alone.
    public var framesPerSecond: UInt32

    public init(width: UInt32, height: UInt32, preferredPixelFormats: [V4L2PixelFormat], framesPerSecond: UInt32) {
        self.width = width; self.height = height
        self.preferredPixelFormats = preferredPixelFormats; self.framesPerSecond = framesPerSecond
    }
}

/// What the driver agreed to.
public struct V4L2NegotiatedFormat: Equatable, Sendable {
    /// The format the driver set (its width/height may differ from the request: drivers round).
    public var format: V4L2Format
    /// The time per frame the driver reports after S_PARM; nil when it has no S_PARM.
    public var timePerFrame: V4L2Fraction?
    public init(format: V4L2Format, timePerFrame: V4L2Fraction?) { self.format = format; self.timePerFrame = timePerFrame }
}

public enum V4L2Negotiation {
    /// ENUM_FMT, then S_FMT with the first preferred format the device offers and the driver keeps
    /// (S_FMT may substitute another format: then the next preference is tried), then S_PARM.
    public static func negotiate(_ device: any V4L2DeviceIO, type: V4L2BufferType, request: V4L2FormatRequest) throws(V4L2Error) -> V4L2NegotiatedFormat {
        var offered: [V4L2PixelFormat] = []
        var index: UInt32 = 0
        while index < V4L2Discovery.enumerationLimit, let description = try device.enumerateFormat(type: type, index: index) {
            offered.append(description.pixelFormat)
            index += 1
        }
        var chosen: V4L2Format?
        for wanted in request.preferredPixelFormats where offered.contains(wanted) {
            let planes = type.isMultiplanar ? [] : [V4L2PlaneFormat(bytesPerLine: 0, sizeImage: 0)]
            let proposal = V4L2Format(type: type, width: request.width, height: request.height, pixelFormat: wanted,
                                      field: 1 /* V4L2_FIELD_NONE */, planes: planes)
            let result: V4L2Format
            do {
                result = try device.setFormat(proposal)
            } catch {
                if case .deviceGone = error { throw error }
                continue  // EINVAL/EBUSY for this one: try the next preference
            }
            if result.pixelFormat == wanted {
                chosen = result
                break
            }
        }
        guard let format = chosen else {
            throw .noAcceptableFormat(requested: request.preferredPixelFormats, offered: offered)
        }
        var timePerFrame: V4L2Fraction?
        if request.framesPerSecond > 0 {
            do {
                let parameters = try device.setStreamParameters(type: type, timePerFrame: V4L2Fraction(1, request.framesPerSecond))
                timePerFrame = parameters.timePerFrame.numerator == 0 ? nil : parameters.timePerFrame
            } catch {
                if case .deviceGone = error { throw error }
                timePerFrame = nil  // driver without S_PARM (ENOTTY) or no rate control (EINVAL)
            }
        }
        return V4L2NegotiatedFormat(format: format, timePerFrame: timePerFrame)
    }
}
