import Testing
import V4L2
@testable import CameraServer

/// Raw pictures or the camera's MJPEG for x264: the rule, on cameras described as V4L2 lists them.
@Suite struct CameraFormatChoiceTests {
    /// A typical USB 2.0 webcam: YUYV at 640x480@30 but 1280x720 only at 10 fps and 1920x1080 at 5,
    /// MJPEG at 30 fps in every size (what uvcvideo lists for a Logitech C270/C920-class camera).
    static let webcam = CameraDescription(
        path: "/dev/video0",
        capability: VideoEncoderPlanTests.camera("/dev/video0", []).capability,
        formats: [
            CameraFormat(format: V4L2FormatDescription(pixelFormat: .yuyv, description: "YUYV 4:2:2"), sizes: [
                size(640, 480, fps: [30, 15]), size(1280, 720, fps: [10, 5]), size(1920, 1080, fps: [5]),
            ]),
            CameraFormat(format: V4L2FormatDescription(pixelFormat: .mjpeg, description: "Motion-JPEG", isCompressed: true), sizes: [
                size(640, 480, fps: [30, 15]), size(1280, 720, fps: [30, 15]), size(1920, 1080, fps: [30]),
            ]),
        ])

    static func size(_ width: UInt32, _ height: UInt32, fps: [UInt32]) -> CameraFrameSize {
        CameraFrameSize(size: .discrete(width: width, height: height), intervals: fps.map { .discrete(V4L2Fraction(1, $0)) })
    }

    static func auto(_ width: Int, _ height: Int, _ fps: Int) throws -> CameraFormatChoice {
        try choose(.automatic, webcam, width, height, fps)
    }

    static func choose(_ preference: CameraFormatPreference, _ camera: CameraDescription,
                       _ width: Int, _ height: Int, _ fps: Int) throws -> CameraFormatChoice {
        try CameraFormatChoice.choose(preference, camera: camera, width: width, height: height, framesPerSecond: fps)
    }

    @Test("auto: raw where it reaches the size and rate, MJPEG where only MJPEG does")
    func automatic() throws {
        #expect(try Self.auto(640, 480, 30).formats == [.yuyv])
        #expect(try Self.auto(640, 480, 30).reason == "raw pictures: 640x480 at 30 fps")
        let hd = try Self.auto(1280, 720, 30)
        #expect(hd.formats == [.mjpeg])
        #expect(hd.reason == "MJPEG: 1280x720 at 30 fps as MJPEG, raw only at 10 fps")
        #expect(try Self.auto(1920, 1080, 25).formats == [.mjpeg])
        // 10 fps asked: YUYV gives it at 720p.
        #expect(try Self.auto(1280, 720, 10).formats == [.yuyv])
        // A size neither lists: raw, the driver gives the nearest.
        #expect(try Self.auto(800, 600, 30).formats == [.yuyv])
        #expect(try Self.auto(800, 600, 30).reason == "raw pictures: MJPEG is no faster at 800x600")
        // 30000/1001 counts as 30.
        var ntsc = Self.webcam
        ntsc.formats[0].sizes[1] = CameraFrameSize(size: .discrete(width: 1280, height: 720), intervals: [.discrete(V4L2Fraction(1001, 30000))])
        #expect(try Self.choose(.automatic, ntsc, 1280, 720, 30).formats == [.yuyv])
        // A size range (stepwise) with a continuous rate range.
        var stepwise = Self.webcam
        stepwise.formats[1].sizes = [CameraFrameSize(size: .stepwise(minWidth: 160, maxWidth: 1920, stepWidth: 16, minHeight: 120, maxHeight: 1080, stepHeight: 8),
                                                     intervals: [.continuous(min: V4L2Fraction(1, 60), max: V4L2Fraction(1, 1))])]
        #expect(CameraFormatChoice.fastestRate(of: .mjpeg, in: stepwise, width: 1280, height: 720) == 60)
        #expect(try Self.choose(.automatic, stepwise, 1280, 720, 30).formats == [.mjpeg])
    }

    @Test("explicit raw or mjpeg, and cameras with one kind only")
    func explicitAndOneKind() throws {
        #expect(try Self.choose(.mjpeg, Self.webcam, 640, 480, 30).formats == [.mjpeg])
        #expect(try Self.choose(.raw, Self.webcam, 1280, 720, 30).formats == [.yuyv])
        let mjpegOnly = VideoEncoderPlanTests.camera("/dev/video2", [.mjpeg])
        #expect(try Self.choose(.automatic, mjpegOnly, 1280, 720, 30).formats == [.mjpeg])
        #expect(throws: VideoEncoderPlanError.noRawFormat("/dev/video2", offered: ["MJPG"])) { try Self.choose(.raw, mjpegOnly, 640, 480, 30) }
        let rawOnly = VideoEncoderPlanTests.piCamera
        #expect(try Self.choose(.automatic, rawOnly, 1280, 720, 30).formats == [.nv12, .yuv420, .yuyv])
        #expect(throws: VideoEncoderPlanError.cameraHasNoMJPEG("/dev/video0", offered: ["YU12", "YUYV", "NV12"])) {
            try Self.choose(.mjpeg, rawOnly, 640, 480, 30)
        }
    }

    @Test("the source plan: MJPEG under x264, --format mjpeg turns auto into x264, refuses other encoders")
    func inTheSourcePlan() throws {
        var configuration = MediaConfiguration()
        let mjpegOnly = VideoEncoderPlanTests.camera("/dev/video0", [.mjpeg])
        let plan = try MediaSourcePlan.choose(configuration, devices: [mjpegOnly], microphones: [])
        #expect(plan.video == .camera(mjpegOnly, .x264) && plan.cameraFormats == [.mjpeg])
        #expect(plan.cameraFormatReason == "MJPEG: the camera gives no raw format")
        // The webcam at 720p30 beside a Pi's hardware encoder: auto keeps the hardware encoder on YUYV.
        let webcamPlan = try MediaSourcePlan.choose(configuration, devices: [Self.webcam, VideoEncoderPlanTests.bcm2835Codec], microphones: [])
        #expect(webcamPlan.cameraFormats == [.yuyv] || webcamPlan.video == .camera(Self.webcam, .x264))
        configuration.cameraFormat = .mjpeg
        let forced = try MediaSourcePlan.choose(configuration, devices: [VideoEncoderPlanTests.uvcH264], microphones: [])
        #expect(forced.video == .camera(VideoEncoderPlanTests.uvcH264, .x264) && forced.cameraFormats == [.mjpeg])
        configuration.encoder = .passthrough
        configuration.video = .v4l2(devicePath: "/dev/video0")
        #expect(throws: MediaPipelineError.unsupportedSource(VideoEncoderPlanError.mjpegNeedsX264(.passthrough).description)) {
            try MediaSourcePlan.choose(configuration, devices: [VideoEncoderPlanTests.uvcH264], microphones: [])
        }
    }

    @Test("settings: cameraFormat saved, read back and refused when unknown")
    func settingsField() throws {
        var settings = CameraSettings()
        settings.media.cameraFormat = .mjpeg
        #expect(settings.json().contains("\"cameraFormat\":\"mjpeg\""))
        let changed = try CameraSettings().applying(.object([("cameraFormat", .string("raw"))]))
        #expect(changed.media.cameraFormat == .raw)
        #expect(throws: CameraSettings.InvalidField.self) { try CameraSettings().applying(.object([("cameraFormat", .string("h264"))])) }
    }
}
