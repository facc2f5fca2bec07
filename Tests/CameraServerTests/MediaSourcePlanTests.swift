import Testing
import V4L2
@testable import CameraServer

/// What the pipeline opens, from the settings and what the board has: every fallback and its reason.
@Suite struct MediaSourcePlanTests {
    typealias Board = VideoEncoderPlanTests
    /// A Pi Camera Module 3 on a Pi 5 as V4L2 shows it: raw Bayer only (issue 23).
    static let bayerCamera = Board.camera("/dev/video0", [V4L2PixelFormat(fourCC: "pBAA")])

    static func configuration(video: VideoSourceSetting = .automatic, audio: AudioSourceSetting = .automatic,
                              encoder: EncoderPreference = .automatic) -> MediaConfiguration {
        var configuration = MediaConfiguration()
        configuration.video = video
        configuration.audio = audio
        configuration.encoder = encoder
        return configuration
    }

    @Test("auto: the first usable camera with the encoder the board offers, the first microphone")
    func automaticFindsDevices() throws {
        let plan = try MediaSourcePlan.choose(Self.configuration(), devices: [Board.piCamera, Board.bcm2835Codec],
                                              microphones: ["plughw:1,0", "plughw:2,0"])
        #expect(plan.video == .camera(Board.piCamera, .hardware(encoderPath: "/dev/video11", cameraFormats: [.nv12, .yuv420])))
        #expect(plan.audio == .microphone(name: "plughw:1,0"))
        #expect(plan.fallbacks.isEmpty)
    }

    @Test("auto on a board with nothing usable: the synthetic sources, and a reason for each")
    func automaticFallsBackWithReasons() throws {
        let bare = try MediaSourcePlan.choose(Self.configuration(), devices: [], microphones: [])
        #expect(bare.video == .testPattern && bare.audio == .testTone)
        #expect(bare.fallbacks == ["test pattern: no V4L2 camera found", "test tone: no ALSA capture device found"])

        let bayer = try MediaSourcePlan.choose(Self.configuration(), devices: [Self.bayerCamera], microphones: ["pulse"])
        #expect(bayer.video == .testPattern && bayer.audio == .microphone(name: "pulse"))
        #expect(bayer.fallbacks == ["test pattern: no V4L2 camera offers NV12, YU12, YUYV, MJPEG or H.264 (/dev/video0)"])

        // A usable camera but an encoder preference it cannot honour.
        let noHardware = try MediaSourcePlan.choose(Self.configuration(encoder: .hardware), devices: [Board.uvcH264], microphones: [])
        #expect(noHardware.video == .testPattern)
        #expect(noHardware.fallbacks.first?.hasPrefix("test pattern: /dev/video0 cannot be used with encoder hardware: no V4L2 H.264 encoder") == true)
    }

    @Test("explicit sources are honoured or refused with the reason; none is replaced by a synthetic one")
    func explicitSources() throws {
        let camera = try MediaSourcePlan.choose(Self.configuration(video: .v4l2(devicePath: "/dev/video0"), audio: .alsa(deviceName: "hw:0")),
                                                devices: [Board.uvcH264], microphones: [])
        #expect(camera.video == .camera(Board.uvcH264, .passthrough) && camera.audio == .microphone(name: "hw:0"))
        #expect(throws: MediaPipelineError.unsupportedSource("cannot capture from /dev/video9: no such V4L2 device")) {
            try MediaSourcePlan.choose(Self.configuration(video: .v4l2(devicePath: "/dev/video9")), devices: [Board.uvcH264], microphones: [])
        }
        #expect(throws: MediaPipelineError.unsupportedSource(VideoEncoderPlanError.cameraHasNoH264("/dev/video0", offered: ["pBAA"]).description)) {
            try MediaSourcePlan.choose(Self.configuration(video: .v4l2(devicePath: "/dev/video0"), encoder: .passthrough),
                                       devices: [Self.bayerCamera], microphones: [])
        }
        #expect(throws: MediaPipelineError.unsupportedSource(VideoEncoderPlanError.passthroughNeedsCamera.description)) {
            try MediaSourcePlan.choose(Self.configuration(video: .testPattern, encoder: .passthrough), devices: [], microphones: [])
        }
        let synthetic = try MediaSourcePlan.choose(Self.configuration(video: .testPattern, audio: .none), devices: [Board.piCamera],
                                                   microphones: ["plughw:1,0"])
        #expect(synthetic.video == .testPattern && synthetic.audio == .none && synthetic.fallbacks.isEmpty)
        let file = try MediaSourcePlan.choose(Self.configuration(video: .file(path: "/x.h264"), audio: .testTone), devices: [],
                                              microphones: [])
        #expect(file.video == .file(path: "/x.h264") && file.audio == .testTone)
    }
}
