import V4L2

/// How the camera's pictures become H.264, decided once per pipeline from the setting and what
/// the board has (V4L2 discovery). Pure: the discovery results come in as values.
enum VideoEncoderPlan: Equatable, Sendable, CustomStringConvertible {
    /// libx264 on the CPU, from raw frames (any source).
    case x264
    /// A V4L2 memory-to-memory H.264 encoder (the Pi's bcm2835-codec), fed by DMABUF import of the
    /// camera's buffers; `cameraFormats` are the raw formats both sides share, best first.
    case hardware(encoderPath: String, cameraFormats: [V4L2PixelFormat])
    /// The camera encodes H.264 itself (UVC H.264 cameras, the Pi's legacy bcm2835-v4l2).
    case passthrough

    var description: String {
        switch self {
        case .x264: return "x264"
        case let .hardware(path, _): return "v4l2-m2m:\(path)"
        case .passthrough: return "camera H.264 (passthrough)"
        }
    }

    /// What to ask the camera for under this plan.
    var cameraFormats: [V4L2PixelFormat] {
        switch self {
        case .x264: return V4L2VideoSource.preferredFormats
        case let .hardware(_, formats): return formats
        case .passthrough: return [.h264]
        }
    }

    /// `camera`: the V4L2 camera in use (nil: test pattern or file). `devices`: every V4L2 node.
    /// `auto` prefers the least CPU: the camera's own H.264, else a hardware encoder that takes one
    /// of the camera's raw formats, else x264. An explicit choice the board cannot honour is an error
    /// that says why, so the settings page can show it.
    static func choose(preference: EncoderPreference, camera: CameraDescription?,
                       devices: [CameraDescription]) throws(VideoEncoderPlanError) -> VideoEncoderPlan {
        guard let camera else {
            switch preference {
            case .automatic, .x264: return .x264
            case .hardware: throw .hardwareNeedsCamera
            case .passthrough: throw .passthroughNeedsCamera
            }
        }
        let offered = camera.formats.map(\.format.pixelFormat)
        let rawOffered = V4L2VideoSource.preferredFormats.filter { offered.contains($0) }
        let hardware = Self.hardwareEncoder(for: rawOffered, among: devices)
        switch preference {
        case .x264:
            // Raw pictures, or the camera's MJPEG decoded (CameraFormatChoice picks between them).
            guard !rawOffered.isEmpty || offered.contains(.mjpeg) else { throw .noRawFormat(camera.path, offered: offered.map(\.description)) }
            return .x264
        case .hardware:
            guard let hardware else {
                throw .noHardwareEncoder(cameraFormats: rawOffered.map(\.description),
                                         encoders: devices.filter { $0.kind == .memoryToMemory }.map(\.path))
            }
            return hardware
        case .passthrough:
            guard offered.contains(.h264) else { throw .cameraHasNoH264(camera.path, offered: offered.map(\.description)) }
            return .passthrough
        case .automatic:
            if offered.contains(.h264) { return .passthrough }
            if let hardware { return hardware }
            guard !rawOffered.isEmpty || offered.contains(.mjpeg) else { throw .noRawFormat(camera.path, offered: offered.map(\.description)) }
            return .x264
        }
    }

    /// The first M2M device that turns one of `rawFormats` into H.264.
    static func hardwareEncoder(for rawFormats: [V4L2PixelFormat], among devices: [CameraDescription]) -> VideoEncoderPlan? {
        for device in devices where device.kind == .memoryToMemory && device.formats.contains(where: { $0.format.pixelFormat == .h264 }) {
            let accepted = device.inputFormats.map(\.format.pixelFormat)
            let shared = rawFormats.filter { accepted.contains($0) }
            if !shared.isEmpty { return .hardware(encoderPath: device.path, cameraFormats: shared) }
        }
        return nil
    }
}

enum VideoEncoderPlanError: Error, Equatable, CustomStringConvertible {
    case hardwareNeedsCamera
    case passthroughNeedsCamera
    case noRawFormat(String, offered: [String])
    case noHardwareEncoder(cameraFormats: [String], encoders: [String])
    case cameraHasNoH264(String, offered: [String])
    case cameraHasNoMJPEG(String, offered: [String])
    /// `--format mjpeg` with an encoder that takes no decoded pictures (hardware, passthrough).
    case mjpegNeedsX264(EncoderPreference)

    var description: String {
        switch self {
        case .hardwareNeedsCamera:
            return "the hardware encoder takes pictures from a V4L2 camera; this source has none (choose auto or x264)"
        case .passthroughNeedsCamera:
            return "passthrough sends a camera's own H.264; this source is not a V4L2 camera (choose auto or x264)"
        case let .noRawFormat(path, offered):
            return "\(path) delivers no format x264 takes (offers \(offered.joined(separator: ", ")); NV12, YU12, YUYV or MJPEG needed)"
        case let .noHardwareEncoder(formats, encoders):
            let found = encoders.isEmpty ? "no V4L2 memory-to-memory device" : "M2M devices \(encoders.joined(separator: ", "))"
            return "no V4L2 H.264 encoder takes the camera's formats (\(formats.joined(separator: ", "))); found \(found)"
        case let .cameraHasNoH264(path, offered):
            return "\(path) does not encode H.264 itself (offers \(offered.joined(separator: ", ")))"
        case let .cameraHasNoMJPEG(path, offered):
            return "\(path) gives no MJPEG (offers \(offered.joined(separator: ", ")))"
        case let .mjpegNeedsX264(encoder):
            return "--format mjpeg decodes the camera's JPEGs for x264; encoder \(encoder.rawValue) cannot take them (choose auto or x264)"
        }
    }
}
