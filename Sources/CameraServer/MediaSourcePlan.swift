import V4L2

/// What the media pipeline opens, decided from the settings and what the board has, before anything
/// is opened (like VideoEncoderPlan, whose choice it contains). Pure: the V4L2 devices and the ALSA
/// microphones come in as values, so every fallback is tested without hardware, and each carries the
/// reason the pipeline logs.
struct MediaSourcePlan: Equatable, Sendable {
    enum Video: Equatable, Sendable {
        case testPattern
        /// A V4L2 camera and how its pictures become H.264.
        case camera(CameraDescription, VideoEncoderPlan)
        /// An Annex-B H.264 file, looped (passthrough).
        case file(path: String)
        /// A program's Annex-B H.264 stdout (passthrough).
        case exec(command: String)
    }

    enum Audio: Equatable, Sendable {
        case testTone
        /// An ALSA capture PCM name (e.g. "plughw:1,0", "pulse").
        case microphone(name: String)
        case none
    }

    var video: Video
    var audio: Audio
    /// A camera's pixel formats to ask for, best first (CameraFormatChoice under x264), and why.
    var cameraFormats: [V4L2PixelFormat] = []
    var cameraFormatReason: String?
    /// Why `auto` settled for a synthetic source, one line each (logged at start).
    var fallbacks: [String] = []

    /// `cameras`: every V4L2 node described (capture devices and M2M encoders alike); `microphones`:
    /// the ALSA capture PCMs found. An explicit source the board cannot serve is an error that says
    /// why (the settings page shows it); `auto` falls back to the synthetic sources instead.
    static func choose(_ configuration: MediaConfiguration, devices: [CameraDescription],
                       microphones: [String]) throws(MediaPipelineError) -> MediaSourcePlan {
        var plan = MediaSourcePlan(video: .testPattern, audio: .testTone)
        switch configuration.video {
        case .automatic:
            if let camera = V4L2VideoSource.firstUsableCamera(in: devices) {
                do {
                    try plan.useCamera(camera, configuration, devices: devices)
                } catch {
                    plan.fallbacks.append("test pattern: \(camera.path) cannot be used with encoder \(configuration.encoder.rawValue): \(error)")
                }
            } else {
                let seen = devices.filter { $0.kind == .videoCapture }.map(\.path)
                plan.fallbacks.append("test pattern: " + (seen.isEmpty
                    ? "no V4L2 camera found"
                    : "no V4L2 camera offers NV12, YU12, YUYV, MJPEG or H.264 (\(seen.joined(separator: ", ")))"))
            }
        case .testPattern:
            do {
                _ = try VideoEncoderPlan.choose(preference: configuration.encoder, camera: nil, devices: [])
            } catch {
                throw .unsupportedSource(error.description)
            }
        case let .v4l2(path):
            guard let camera = devices.first(where: { $0.path == path }) else {
                throw .unsupportedSource("cannot capture from \(path): no such V4L2 device")
            }
            do {
                try plan.useCamera(camera, configuration, devices: devices)
            } catch {
                throw .unsupportedSource(error.description)
            }
        case let .file(path):
            plan.video = .file(path: path)
        case let .exec(command):
            plan.video = .exec(command: command)
        }
        switch configuration.audio {
        case .automatic:
            if let first = microphones.first {
                plan.audio = .microphone(name: first)
            } else {
                plan.fallbacks.append("test tone: no ALSA capture device found")
            }
        case .testTone: plan.audio = .testTone
        case .none: plan.audio = .none
        case let .alsa(name): plan.audio = .microphone(name: name)
        }
        return plan
    }

    /// `camera` with the encoder the settings and the board give, and the pixel formats to ask it
    /// for: `--format mjpeg` makes x264 the encoder under `--encoder auto` (the hardware encoder
    /// imports the camera's raw buffers, passthrough wants its H.264).
    private mutating func useCamera(_ camera: CameraDescription, _ configuration: MediaConfiguration,
                                    devices: [CameraDescription]) throws(VideoEncoderPlanError) {
        var preference = configuration.encoder
        if configuration.cameraFormat == .mjpeg {
            guard preference == .automatic || preference == .x264 else { throw .mjpegNeedsX264(preference) }
            preference = .x264
        }
        let encoder = try VideoEncoderPlan.choose(preference: preference, camera: camera, devices: devices)
        if encoder == .x264 {
            let choice = try CameraFormatChoice.choose(configuration.cameraFormat, camera: camera, width: configuration.width,
                                                       height: configuration.height, framesPerSecond: configuration.framesPerSecond)
            cameraFormats = choice.formats
            cameraFormatReason = choice.reason
        } else {
            cameraFormats = encoder.cameraFormats
            cameraFormatReason = nil
        }
        video = .camera(camera, encoder)
    }
}
