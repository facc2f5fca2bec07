import Logging
import Testing
import V4L2
@testable import CameraServer

/// Which encoder a board gets, from what V4L2 discovery found.
@Suite struct VideoEncoderPlanTests {
    static func camera(_ path: String, _ formats: [V4L2PixelFormat]) -> CameraDescription {
        let flags: V4L2CapabilityFlags = [.videoCapture, .streaming]
        return CameraDescription(path: path, capability: V4L2Capability(driver: "uvcvideo", card: "cam", busInfo: "usb-1",
                                                                        capabilities: flags, deviceCapabilities: flags),
                                 formats: formats.map { CameraFormat(format: V4L2FormatDescription(pixelFormat: $0, description: "\($0)"), sizes: []) })
    }

    static func encoder(_ path: String, coded: [V4L2PixelFormat], raw: [V4L2PixelFormat]) -> CameraDescription {
        let flags: V4L2CapabilityFlags = [.videoM2MMultiplanar, .streaming]
        return CameraDescription(path: path, capability: V4L2Capability(driver: "bcm2835-codec", card: "enc", busInfo: "platform",
                                                                        capabilities: flags, deviceCapabilities: flags),
                                 formats: coded.map { CameraFormat(format: V4L2FormatDescription(pixelFormat: $0, description: "\($0)"), sizes: []) },
                                 inputFormats: raw.map { CameraFormat(format: V4L2FormatDescription(pixelFormat: $0, description: "\($0)"), sizes: []) })
    }

    static let piCamera = camera("/dev/video0", [.yuv420, .yuyv, .nv12])
    static let uvcH264 = camera("/dev/video0", [.mjpeg, .yuyv, .h264])
    static let bcm2835Codec = encoder("/dev/video11", coded: [.h264], raw: [.yuv420, .nv12, .rgb24])
    /// vicodec: an M2M encoder that is not H.264, never chosen.
    static let vicodec = encoder("/dev/video1", coded: [V4L2PixelFormat(fourCC: "FWHT")], raw: [.yuv420, .nv12, .yuyv])

    @Test func automaticPrefersTheLeastCPU() throws {
        // Pi 4 with a raw camera: the hardware encoder, fed the formats both sides share, NV12 first.
        #expect(try VideoEncoderPlan.choose(preference: .automatic, camera: Self.piCamera, devices: [Self.piCamera, Self.bcm2835Codec])
                == .hardware(encoderPath: "/dev/video11", cameraFormats: [.nv12, .yuv420]))
        // A camera that encodes H.264 itself: passthrough, whatever else is there.
        #expect(try VideoEncoderPlan.choose(preference: .automatic, camera: Self.uvcH264, devices: [Self.uvcH264, Self.bcm2835Codec])
                == .passthrough)
        // Pi 5 (no H.264 encoder) or a board with only a non-H.264 codec: x264.
        #expect(try VideoEncoderPlan.choose(preference: .automatic, camera: Self.piCamera, devices: [Self.piCamera, Self.vicodec]) == .x264)
        // No camera (test pattern): x264.
        #expect(try VideoEncoderPlan.choose(preference: .automatic, camera: nil, devices: [Self.bcm2835Codec]) == .x264)
    }

    @Test func explicitChoicesAreHonouredOrRefusedWithAReason() throws {
        #expect(try VideoEncoderPlan.choose(preference: .x264, camera: Self.uvcH264, devices: [Self.bcm2835Codec]) == .x264)
        #expect(VideoEncoderPlan.x264.cameraFormats == [.nv12, .yuv420, .yuyv])
        // UVC H.264 camera offers YUYV, bcm2835-codec does not take it: no shared format.
        #expect(throws: VideoEncoderPlanError.noHardwareEncoder(cameraFormats: ["YUYV"], encoders: ["/dev/video11"])) {
            try VideoEncoderPlan.choose(preference: .hardware, camera: Self.uvcH264, devices: [Self.bcm2835Codec])
        }
        #expect(throws: VideoEncoderPlanError.noHardwareEncoder(cameraFormats: ["NV12", "YU12", "YUYV"], encoders: ["/dev/video1"])) {
            try VideoEncoderPlan.choose(preference: .hardware, camera: Self.piCamera, devices: [Self.vicodec])
        }
        #expect(throws: VideoEncoderPlanError.cameraHasNoH264("/dev/video0", offered: ["YU12", "YUYV", "NV12"])) {
            try VideoEncoderPlan.choose(preference: .passthrough, camera: Self.piCamera, devices: [])
        }
        #expect(throws: VideoEncoderPlanError.hardwareNeedsCamera) {
            try VideoEncoderPlan.choose(preference: .hardware, camera: nil, devices: [Self.bcm2835Codec])
        }
        #expect(throws: VideoEncoderPlanError.passthroughNeedsCamera) {
            try VideoEncoderPlan.choose(preference: .passthrough, camera: nil, devices: [])
        }
        #expect(throws: VideoEncoderPlanError.noRawFormat("/dev/video0", offered: ["H264"])) {
            try VideoEncoderPlan.choose(preference: .x264, camera: Self.camera("/dev/video0", [.h264]), devices: [])
        }
        #expect(try VideoEncoderPlan.choose(preference: .passthrough, camera: Self.uvcH264, devices: []).cameraFormats == [.h264])
    }

    @Test func errorsReadWellOnTheSettingsPage() {
        let message = VideoEncoderPlanError.noHardwareEncoder(cameraFormats: ["YUYV"], encoders: []).description
        #expect(message == "no V4L2 H.264 encoder takes the camera's formats (YUYV); found no V4L2 memory-to-memory device")
    }

    @Test func levelControlFollowsTheAnsweredProfileLevelID() {
        #expect(MediaPipeline.v4l2Level("42e01f") == .level3_1)
        #expect(MediaPipeline.v4l2Level("42e028") == .level4_0)
        #expect(MediaPipeline.v4l2Level("42e00a") == .level1_0)
        #expect(MediaPipeline.v4l2Level("42e033") == .level5_1)
        #expect(MediaPipeline.v4l2Level("zz") == .level3_1)
    }
}

@Suite struct MediaPipelineStatusTests {
    @Test func statusNamesThePlannedEncoderWithoutRelockingItsCounters() throws {
        var configuration = MediaConfiguration()
        configuration.video = .testPattern
        configuration.audio = .none
        configuration.width = 320
        configuration.height = 240
        let pipeline = try MediaPipeline(configuration: configuration, logger: .init(label: "test"))
        let status = pipeline.status()  // traps ("recursive call to lock") if status() re-enters the lock
        #expect(status.encoder == "x264")
        #expect(pipeline.encoderDescription == "x264")
        #expect(pipeline.encoderPlan == .x264)
        #expect(pipeline.summary.contains("(x264)"))
    }

    @Test func passthroughAndHardwareNeedACameraAndSaySo() {
        var configuration = MediaConfiguration()
        configuration.video = .testPattern
        configuration.audio = .none
        for preference in [EncoderPreference.passthrough, .hardware] {
            configuration.encoder = preference
            #expect(throws: MediaPipelineError.self) { try MediaPipeline(configuration: configuration, logger: .init(label: "test")) }
        }
    }
}
