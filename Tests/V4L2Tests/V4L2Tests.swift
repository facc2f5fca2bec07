import Glibc
import RTCBase
import Testing
@testable import V4L2

@Suite("V4L2 kernel side (no device needed)")
struct V4L2KernelSideTests {
    @Test("Swift constants match linux/videodev2.h and v4l2-controls.h")
    func headerConstants() {
        #expect(V4L2HeaderCheck.mismatches() == [])
    }

    @Test("formats survive Swift → struct v4l2_format → Swift, single- and multi-planar")
    func formatRoundTrip() {
        let single = V4L2Format(type: .videoCapture, width: 1280, height: 720, pixelFormat: .yuyv, field: 1, colorspace: 8,
                                planes: [V4L2PlaneFormat(bytesPerLine: 2560, sizeImage: 1_843_200)])
        #expect(V4L2HeaderCheck.formatRoundTrip(single) == single)
        let multi = V4L2Format(type: .videoOutputMultiplanar, width: 1920, height: 1080, pixelFormat: .nv12, field: 1, colorspace: 0,
                               planes: [V4L2PlaneFormat(bytesPerLine: 1920, sizeImage: 2_088_960), V4L2PlaneFormat(bytesPerLine: 1920, sizeImage: 1_044_480)])
        #expect(V4L2HeaderCheck.formatRoundTrip(multi) == multi)
    }

    @Test("an ioctl on a non-V4L2 fd throws the typed errno; open failures and device loss are typed")
    func typedErrors() throws {
        let device = try KernelV4L2Opener().open(path: "/dev/null")
        defer { device.close() }
        #expect(throws: V4L2Error.ioctl(request: "VIDIOC_QUERYCAP", errno: ENOTTY)) { try device.queryCapability() }
        #expect(throws: V4L2Error.ioctl(request: "VIDIOC_DQBUF", errno: ENOTTY)) {
            _ = try device.dequeueBuffer(type: .videoCapture, memory: .mmap, planeCount: 1)
        }
        #expect(throws: V4L2Error.open(path: "/dev/rtcam-no-such-node", errno: ENOENT)) {
            _ = try KernelV4L2Opener().open(path: "/dev/rtcam-no-such-node")
        }
        #expect(V4L2Error.fromIoctl("VIDIOC_QBUF", errno: ENODEV) == .deviceGone)
        #expect(V4L2Error.fromIoctl("VIDIOC_QBUF", errno: EIO) == .deviceGone)
        #expect(V4L2Error.fromIoctl("VIDIOC_QBUF", errno: EINVAL) == .ioctl(request: "VIDIOC_QBUF", errno: EINVAL))
    }

    @Test("fourcc text in both directions")
    func fourcc() {
        #expect(V4L2PixelFormat.yuyv.description == "YUYV")
        #expect(V4L2PixelFormat(fourCC: "YU12") == .yuv420)
        #expect(V4L2PixelFormat(rawValue: 0x3436_3248) == .h264)
    }

    @Test("devicePaths lists video<N> nodes only, in numeric order")
    func devicePaths() throws {
        var template = Array("/tmp/rtcam-v4l2-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!).map { String(cString: $0) } }
        let directory = try #require(made)
        let names = ["video10", "video2", "video0", "videoX", "media0", "video"]
        for name in names { close(open(directory + "/" + name, O_CREAT | O_WRONLY, 0o644)) }
        defer {
            for name in names { unlink(directory + "/" + name) }
            rmdir(directory)
        }
        #expect(try V4L2Discovery.devicePaths(directory: directory) == ["video0", "video2", "video10"].map { directory + "/" + $0 })
        #expect(throws: V4L2Error.listDirectory(path: directory + "/missing", errno: ENOENT)) {
            _ = try V4L2Discovery.devicePaths(directory: directory + "/missing")
        }
    }
}

@Suite("discovery and negotiation through the seam")
struct V4L2DiscoveryTests {
    @Test("a camera and an M2M encoder are described with formats, sizes and intervals")
    func describe() throws {
        let table = FakeDMABUFTable()
        let opener = FakeOpener()
        opener.nodes["/dev/video0"] = FakeCamera(dmabufs: table)
        opener.nodes["/dev/video11"] = FakeEncoder(dmabufs: table)
        let camera = try V4L2Discovery.describe(path: "/dev/video0", opener: opener)
        #expect(camera.kind == .videoCapture)
        #expect(!camera.isMultiplanar)
        #expect(camera.formats.map(\.format.pixelFormat) == [.yuyv, .nv12])
        #expect(camera.formats[0].sizes.map(\.size) == [.discrete(width: 640, height: 480), .discrete(width: 1280, height: 720)])
        #expect(camera.formats[0].sizes[0].intervals == [.discrete(V4L2Fraction(1, 30)), .discrete(V4L2Fraction(1, 15))])
        #expect(camera.formats[0].sizes[1].intervals == [.discrete(V4L2Fraction(1, 10))])
        #expect(opener.nodes["/dev/video0"]!.isOpen == false)

        let encoder = try V4L2Discovery.describe(path: "/dev/video11", opener: opener)
        #expect(encoder.kind == .memoryToMemory)
        #expect(encoder.isMultiplanar)
        #expect(throws: V4L2Error.open(path: "/dev/video5", errno: 2)) { _ = try V4L2Discovery.describe(path: "/dev/video5", opener: opener) }
    }

    @Test("stepwise sizes: one range, intervals at its largest size")
    func stepwise() {
        let size = V4L2FrameSize.stepwise(minWidth: 32, maxWidth: 1920, stepWidth: 2, minHeight: 32, maxHeight: 1080, stepHeight: 2)
        #expect(size.contains(width: 1280, height: 720))
        #expect(!size.contains(width: 1281, height: 720))
        #expect(!size.contains(width: 2000, height: 720))
    }

    @Test("negotiation honours the caller's order, skips formats the driver substitutes, and fails with what is offered")
    func negotiation() throws {
        let camera = FakeCamera(dmabufs: FakeDMABUFTable())
        let request = V4L2FormatRequest(width: 640, height: 480, preferredPixelFormats: [.mjpeg, .nv12, .yuyv], framesPerSecond: 30)
        let chosen = try V4L2Negotiation.negotiate(camera, type: .videoCapture, request: request)
        #expect(chosen.format.pixelFormat == .nv12)          // MJPEG not offered, NV12 before YUYV
        #expect(chosen.format.planes[0].bytesPerLine == 640)
        #expect(chosen.timePerFrame == V4L2Fraction(1, 30))
        #expect(camera.log.contains("S_PARM 1/30"))

        camera.substitute = [.nv12: .yuyv]                   // the driver answers S_FMT(NV12) with YUYV
        let next = try V4L2Negotiation.negotiate(camera, type: .videoCapture, request: V4L2FormatRequest(
            width: 640, height: 480, preferredPixelFormats: [.nv12, .yuyv], framesPerSecond: 0))
        #expect(next.format.pixelFormat == .yuyv)
        #expect(next.timePerFrame == nil)

        #expect(throws: V4L2Error.noAcceptableFormat(requested: [.h264, .mjpeg], offered: [.yuyv, .nv12])) {
            _ = try V4L2Negotiation.negotiate(camera, type: .videoCapture, request: V4L2FormatRequest(
                width: 640, height: 480, preferredPixelFormats: [.h264, .mjpeg], framesPerSecond: 30))
        }
    }
}

@Suite("capture: freshest frame wins, ownership, device loss")
struct V4L2CaptureTests {
    func makeCapture(multiplanar: Bool = false) -> (V4L2Capture, FakeCamera, FakeDMABUFTable) {
        let table = FakeDMABUFTable()
        let camera = FakeCamera(multiplanar: multiplanar, dmabufs: table)
        let opener = FakeOpener()
        opener.nodes["/dev/video0"] = camera
        let capture = V4L2Capture(configuration: V4L2CaptureConfiguration(
            path: "/dev/video0", request: V4L2FormatRequest(width: 640, height: 480, preferredPixelFormats: [.yuyv], framesPerSecond: 30)),
            opener: opener)
        return (capture, camera, table)
    }

    @Test("start maps, exports and queues 4 buffers, then streams")
    func start() throws {
        let (capture, camera, table) = makeCapture()
        try capture.start()
        #expect(capture.state == .streaming)
        #expect(camera.liveMappings == 4)
        #expect(table.open.count == 4)
        #expect(camera.queued == [0, 1, 2, 3])
        #expect(camera.streaming)
        #expect(capture.fileDescriptor == 42)
        #expect(capture.maximumHeldFrames == 2)
        #expect(try capture.readFreshestFrame(now: .zero) == nil)   // nothing captured yet
    }

    @Test("of three ready frames the newest is delivered, the two stale ones requeued at once")
    func freshestWins() throws {
        let (capture, camera, _) = makeCapture()
        try capture.start()
        camera.produce(3, startMicroseconds: 5_000_000)
        let frame = try #require(try capture.readFreshestFrame(now: MonotonicTime(seconds: 99)))
        #expect(frame.sequence == 2)
        #expect(frame.data.count == 640 * 480 * 2)
        #expect(frame.data[0] == 2 && frame.data[1] == 3)   // the bytes the sensor wrote for frame 2
        #expect(frame.captureTime == MonotonicTime(nanoseconds: (5_000_000 + 2 * 33_333) * 1000))
        #expect(frame.timestampSource == .driverMonotonic)
        #expect(frame.dmabufFDs.count == 1)
        #expect(capture.statistics.framesSkippedStale == 2)
        #expect(capture.statistics.framesDelivered == 1)
        #expect(camera.queued.count == 3)                  // 1 never filled + 2 requeued; 1 held
        try capture.release(frame)
        #expect(camera.queued.count == 4)
        #expect(throws: V4L2Error.unknownFrame(index: frame.bufferIndex)) { try capture.release(frame) }
    }

    @Test("a consumer holding its maximum gets no new frame; the driver keeps buffers to fill")
    func consumerBusy() throws {
        let (capture, camera, _) = makeCapture()
        try capture.start()
        camera.produce(1)
        let first = try #require(try capture.readFreshestFrame(now: .zero))
        camera.produce(1)
        let second = try #require(try capture.readFreshestFrame(now: .zero))
        camera.produce(1)
        #expect(try capture.readFreshestFrame(now: .zero) == nil)
        #expect(capture.statistics.framesDroppedConsumerBusy == 1)
        #expect(camera.queued.count == 2)
        try capture.release(first)
        try capture.release(second)
        camera.produce(1)
        #expect(try capture.readFreshestFrame(now: .zero)?.sequence == 3)
        #expect(camera.driverDrops == 0)
    }

    @Test("error-flagged buffers are requeued and counted; non-monotonic timestamps use the dequeue time; sequence gaps counted")
    func corruptedAndTimestamps() throws {
        let (capture, camera, _) = makeCapture()
        try capture.start()
        camera.produce(1, error: true)
        #expect(try capture.readFreshestFrame(now: .zero) == nil)
        #expect(capture.statistics.corruptedFrames == 1)
        camera.timestampFlags = .timestampCopy
        camera.sequence += 5                               // the driver lost 5 frames
        camera.produce(1)
        let frame = try #require(try capture.readFreshestFrame(now: MonotonicTime(milliseconds: 777)))
        #expect(frame.timestampSource == .dequeueTime)
        #expect(frame.captureTime == MonotonicTime(milliseconds: 777))
        #expect(capture.statistics.driverSequenceGaps == 5)
    }

    @Test("no EXPBUF: frames come without DMABUF fds and it is reported")
    func exportFailure() throws {
        let (capture, camera, table) = makeCapture()
        camera.exportFails = true
        try capture.start()
        camera.produce(1)
        let frame = try #require(try capture.readFreshestFrame(now: .zero))
        #expect(frame.dmabufFDs.isEmpty)
        #expect(capture.statistics.dmabufExportFailed)
        #expect(table.open.isEmpty)
    }

    @Test("unplug: capture ends with .deviceGone, releases all but the held frame, which stays readable; reopen streams again")
    func deviceLoss() throws {
        let (capture, camera, table) = makeCapture()
        try capture.start()
        camera.produce(1)
        let held = try #require(try capture.readFreshestFrame(now: .zero))
        camera.unplugged = true
        #expect(throws: V4L2Error.deviceGone) { _ = try capture.readFreshestFrame(now: .zero) }
        #expect(capture.state == .deviceGone)
        #expect(capture.fileDescriptor == nil)
        #expect(!camera.isOpen)
        #expect(camera.liveMappings == 1)                  // only the held frame's mapping remains
        #expect(table.open.count == 1)
        #expect(held.data[0] == 0)                         // still valid memory
        #expect(throws: V4L2Error.deviceGone) { _ = try capture.readFreshestFrame(now: .zero) }
        #expect(throws: V4L2Error.deviceGone) { try capture.reopen() }   // still unplugged

        camera.unplugged = false
        try capture.reopen()
        #expect(capture.state == .streaming)
        #expect(capture.statistics.deviceLosses == 2)
        #expect(capture.statistics.reopens == 2)
        try capture.release(held)                          // a frame of the old session: just unmapped
        #expect(camera.liveMappings == 4)
        camera.produce(1)
        let fresh = try #require(try capture.readFreshestFrame(now: .zero))
        capture.stop()
        #expect(capture.state == .stopped)
        #expect(camera.liveMappings == 1)                  // the frame still held after stop
        try capture.release(fresh)
        #expect(camera.liveMappings == 0)
        #expect(table.open.isEmpty)
    }

    @Test("multi-planar cameras use the MPLANE buffer type")
    func multiplanar() throws {
        let (capture, camera, _) = makeCapture(multiplanar: true)
        try capture.start()
        #expect(camera.current?.type == .videoCaptureMultiplanar)
        camera.produce(2)
        #expect(try capture.readFreshestFrame(now: .zero)?.sequence == 1)
    }
}

@Suite("M2M encoder through a fake stateful encoder")
struct V4L2EncoderTests {
    struct Rig {
        let table = FakeDMABUFTable()
        let camera: FakeCamera
        let encoderNode: FakeEncoder
        let capture: V4L2Capture
        let encoder: V4L2M2MEncoder

        init(inputMemory: V4L2EncoderInputMemory = .dmabuf, configure: (FakeEncoder) -> Void = { _ in }) throws {
            camera = FakeCamera(dmabufs: table)
            camera.formats = [.yuv420]
            encoderNode = FakeEncoder(dmabufs: table)
            configure(encoderNode)
            let opener = FakeOpener()
            opener.nodes["/dev/video0"] = camera
            opener.nodes["/dev/video11"] = encoderNode
            capture = V4L2Capture(configuration: V4L2CaptureConfiguration(
                path: "/dev/video0", request: V4L2FormatRequest(width: 640, height: 480, preferredPixelFormats: [.yuv420], framesPerSecond: 30)),
                opener: opener)
            encoder = V4L2M2MEncoder(configuration: V4L2EncoderConfiguration(
                width: 640, height: 480, inputPixelFormat: .yuv420, inputBytesPerLine: 640, bitrate: 1_000_000,
                keyFrameInterval: 30, inputMemory: inputMemory), opener: opener)
            try capture.start()
            try encoder.start()
        }

        /// Captures one frame, encodes it, returns the output; capture frames come back via tags.
        func step(forceKeyFrame: Bool = false) throws -> V4L2EncoderOutput {
            camera.produce(1)
            let frame = try #require(try capture.readFreshestFrame(now: .zero))
            held[UInt64(frame.bufferIndex)] = frame
            #expect(try encoder.encode(frame.encoderInput, forceKeyFrame: forceKeyFrame) != .busy)
            let output = try encoder.readEncoded()
            for tag in output.releasedInputTags {
                let frame = try #require(held[tag])
                held[tag] = nil
                try capture.release(frame)
            }
            return output
        }
        final class Box { var frames: [UInt64: V4L2Frame] = [:] }
        let box = Box()
        var held: [UInt64: V4L2Frame] {
            get { box.frames }
            nonmutating set { box.frames = newValue }
        }
    }

    @Test("start follows the stateful-encoder sequence: coded format first, raw format, rate, controls, buffers, stream on")
    func startSequence() throws {
        let rig = try Rig()
        let log = rig.encoderNode.log.filter { !$0.hasPrefix("QUERYBUF") && $0 != "mmap" && !$0.hasPrefix("QBUF") }
        #expect(log == [
            "QUERYCAP", "SUBSCRIBE_EVENT",
            "S_FMT videoCaptureMultiplanar H264", "S_FMT videoOutputMultiplanar YU12", "S_PARM 1/30",
            "S_EXT_CTRLS VIDEO_BITRATE=1000000", "S_EXT_CTRLS H264_PROFILE=1", "S_EXT_CTRLS H264_LEVEL=9",
            "S_EXT_CTRLS H264_I_PERIOD=30", "S_EXT_CTRLS REPEAT_SEQ_HEADER=1",
            "REQBUFS videoOutputMultiplanar dmabuf 4", "REQBUFS videoCaptureMultiplanar mmap 4",
            "STREAMON videoOutputMultiplanar", "STREAMON videoCaptureMultiplanar",
        ])
        #expect(rig.encoder.inputMemory == .dmabuf)
        #expect(rig.encoderNode.freeCoded.count == 4)
    }

    @Test("zero copy: the camera's DMABUF reaches the encoder, the AU carries its bytes and capture time, the frame comes back")
    func zeroCopy() throws {
        let rig = try Rig()
        let output = try rig.step()
        let frame = try #require(output.frames.first)
        #expect(frame.isKeyFrame)
        #expect(frame.data.prefix(5) == [0, 0, 0, 1, 0x67])
        // IDR slice payload = first 8 bytes of the camera buffer (sequence 0 pattern) + bitrate.
        let slice = Array(frame.data[16...])
        #expect(slice.prefix(5) == [0, 0, 0, 1, 0x65])
        #expect(Array(slice[5..<13]) == (0..<8).map { UInt8($0) })
        #expect(Array(slice[13..<17]) == [0x00, 0x0F, 0x42, 0x40])
        #expect(frame.captureTime == MonotonicTime(nanoseconds: 1_000_000 * 1000))
        #expect(output.releasedInputTags.count == 1)
        #expect(rig.held.isEmpty)
        #expect(rig.encoder.statistics.copiedFrames == 0)
        let second = try rig.step()
        #expect(second.frames.first?.isKeyFrame == false)
        #expect(second.frames.first?.data[4] == 0x41)
    }

    @Test("bitrate changes while streaming apply to the following frames; key frames on request and every I-period")
    func bitrateAndKeyFrames() throws {
        let rig = try Rig()
        _ = try rig.step()
        try rig.encoder.setBitrate(500_000)
        let after = try #require(try rig.step().frames.first)
        #expect(Array(after.data.suffix(4)) == [0x00, 0x07, 0xA1, 0x20])
        #expect(rig.encoderNode.log.contains("S_EXT_CTRLS VIDEO_BITRATE=500000"))
        rig.encoder.requestKeyFrame()
        #expect(try rig.step().frames.first?.isKeyFrame == true)
        #expect(try rig.step().frames.first?.isKeyFrame == false)
        #expect(try rig.step(forceKeyFrame: true).frames.first?.isKeyFrame == true)
        #expect(rig.encoder.statistics.keyFrames == 3)
    }

    @Test("a driver without DMABUF import: copies into MMAP inputs, and the frame is released at once")
    func fallbackAtStart() throws {
        let rig = try Rig { $0.supportsDMABUF = false }
        #expect(rig.encoder.inputMemory == .mmapCopy)
        #expect(rig.encoder.statistics.dmabufFallbacks == 1)
        rig.camera.produce(1)
        let frame = try #require(try rig.capture.readFreshestFrame(now: .zero))
        #expect(try rig.encoder.encode(frame.encoderInput) == .queued(copied: true))
        let output = try rig.encoder.readEncoded()
        #expect(output.releasedInputTags == [UInt64(frame.bufferIndex)])
        let slice = try #require(output.frames.first).data[16...]
        #expect(Array(slice.dropFirst(5).prefix(8)) == (0..<8).map { UInt8($0) })
    }

    @Test("a DMABUF the driver refuses at QBUF switches the running encoder to copying, without losing the frame")
    func fallbackAtQueue() throws {
        let rig = try Rig { $0.requiredInputBytes = 640 * 496 * 3 / 2 }   // height padded to 16 lines
        let output = try rig.step()
        #expect(rig.encoder.inputMemory == .mmapCopy)
        #expect(rig.encoder.statistics.dmabufFallbacks == 1)
        #expect(output.frames.count == 1)
        #expect(rig.held.isEmpty)
        #expect(rig.encoderNode.log.contains("STREAMOFF videoOutputMultiplanar"))
        #expect(try rig.step().frames.count == 1)
    }

    @Test("all inputs in flight: .busy, and the caller keeps its frame")
    func busy() throws {
        let rig = try Rig { $0.holdInputs = true }
        for i in 0..<4 {
            rig.camera.produce(1)
            let frame = try #require(try rig.capture.readFreshestFrame(now: .zero))
            #expect(try rig.encoder.encode(frame.encoderInput) == .queued(copied: false), "frame \(i)")
            if i < 1 { continue }
            try rig.capture.release(frame)  // (the fake never reads them; only slots matter here)
        }
        rig.camera.produce(1)
        let extra = try #require(try rig.capture.readFreshestFrame(now: .zero))
        #expect(try rig.encoder.encode(extra.encoderInput) == .busy)
        #expect(rig.encoder.statistics.framesRejectedBusy == 1)
    }

    @Test("drain: queued frames come out, then LAST / EOS")
    func drain() throws {
        let rig = try Rig()
        _ = try rig.step()
        try rig.encoder.beginDrain()
        let output = try rig.encoder.readEncoded()
        #expect(output.reachedEndOfStream)
        #expect(rig.encoder.state == .drained)
    }

    @Test("encoder device loss: .deviceGone and every in-flight input handed back")
    func encoderLoss() throws {
        let rig = try Rig { $0.holdInputs = true }
        rig.camera.produce(1)
        let frame = try #require(try rig.capture.readFreshestFrame(now: .zero))
        _ = try rig.encoder.encode(frame.encoderInput)
        rig.encoderNode.unplugged = true
        #expect(throws: V4L2Error.deviceGone) { _ = try rig.encoder.readEncoded() }
        #expect(rig.encoder.state == .deviceGone)
        #expect(rig.encoder.takeReleasedInputs() == [UInt64(frame.bufferIndex)])
        #expect(rig.encoderNode.liveMappings == 0)
        #expect(throws: V4L2Error.deviceGone) { _ = try rig.encoder.encode(frame.encoderInput) }
    }

    @Test("another coded format (FWHT): asked for on CAPTURE, generic controls plus extras; missing controls are tolerated")
    func otherCodec() throws {
        let table = FakeDMABUFTable()
        let node = FakeEncoder(dmabufs: table)
        node.codedPixelFormats = [.h264, .fwht]
        node.missingControls = [.videoBitrate, .forceKeyFrame]
        let opener = FakeOpener()
        opener.nodes["/dev/video1"] = node
        let encoder = V4L2M2MEncoder(configuration: V4L2EncoderConfiguration(
            path: "/dev/video1", width: 640, height: 480, codedPixelFormat: .fwht, bitrate: 1_000_000, keyFrameInterval: 5,
            extraControls: [V4L2Control(.fwhtIFrameQP, 10)]), opener: opener)
        try encoder.start()
        #expect(encoder.codedFormat?.pixelFormat == .fwht)
        let controls = node.log.filter { $0.hasPrefix("S_EXT_CTRLS") }
        #expect(controls == ["S_EXT_CTRLS VIDEO_BITRATE=1000000", "S_EXT_CTRLS GOP_SIZE=5", "S_EXT_CTRLS FWHT_I_FRAME_QP=10"])
        #expect(encoder.statistics.rejectedControls == [.videoBitrate: 22])
        // Runtime controls the driver lacks: recorded, not thrown, not sent again.
        try encoder.setBitrate(500_000)
        #expect(node.log.filter { $0.hasPrefix("S_EXT_CTRLS VIDEO_BITRATE") }.count == 1)
        let pixels = UnsafeMutableRawBufferPointer.allocate(byteCount: 640 * 480 * 3 / 2, alignment: 64)
        defer { pixels.deallocate() }
        pixels.initializeMemory(as: UInt8.self, repeating: 7)
        let input = V4L2EncoderInput(planes: [UnsafeRawBufferPointer(pixels)], planeLengths: [pixels.count], dmabufFDs: [],
                                     bytesPerLine: 640, captureTime: .zero, tag: 1)
        #expect(try encoder.encode(input, forceKeyFrame: true) == .queued(copied: true))
        #expect(try encoder.encode(input, forceKeyFrame: true) == .queued(copied: true))
        #expect(encoder.statistics.rejectedControls[.forceKeyFrame] == 22)
        #expect(node.log.filter { $0.hasPrefix("S_EXT_CTRLS FORCE_KEY_FRAME") }.count == 1)
        #expect(try encoder.readEncoded().frames.count == 2)
    }

    @Test("a driver without the coded format fails start with a typed error")
    func codedFormatMissing() throws {
        let opener = FakeOpener()
        opener.nodes["/dev/video1"] = FakeEncoder(dmabufs: FakeDMABUFTable())
        let encoder = V4L2M2MEncoder(configuration: V4L2EncoderConfiguration(
            path: "/dev/video1", width: 640, height: 480, codedPixelFormat: .fwht), opener: opener)
        #expect(throws: V4L2Error.unsupportedDevice(path: "/dev/video1", reason: "no FWHT on the CAPTURE queue (got H264)")) {
            try encoder.start()
        }
        #expect(encoder.state == .stopped)
    }

    @Test("a frame without DMABUF fds switches an importing encoder to copying instead of failing QBUF")
    func frameWithoutDMABUF() throws {
        let rig = try Rig()
        let pixels = UnsafeMutableRawBufferPointer.allocate(byteCount: 640 * 480 * 3 / 2, alignment: 64)
        defer { pixels.deallocate() }
        for i in 0..<8 { pixels[i] = UInt8(100 + i) }
        let input = V4L2EncoderInput(planes: [UnsafeRawBufferPointer(pixels)], planeLengths: [pixels.count], dmabufFDs: [],
                                     bytesPerLine: 640, captureTime: .zero, tag: 9)
        #expect(try rig.encoder.encode(input) == .queued(copied: true))
        #expect(rig.encoder.inputMemory == .mmapCopy)
        #expect(rig.encoder.statistics.dmabufFallbacks == 1)
        let output = try rig.encoder.readEncoded()
        #expect(output.releasedInputTags == [9])
        let slice = try #require(output.frames.first).data[16...]
        #expect(Array(slice.dropFirst(5).prefix(8)) == (0..<8).map { UInt8(100 + $0) })
    }

    @Test("FWHT frame headers: magic, size and the I-frame flag")
    func fwhtHeader() {
        var bytes: [UInt8] = [0x4F, 0x4F, 0x4F, 0x4F, 0xFF, 0xFF, 0xFF, 0xFF]
        for word: UInt32 in [3, 640, 360, 0x0000_0400 | 0x200, 1, 0, 0, 0, 1234] {
            bytes += [UInt8(word >> 24), UInt8(truncatingIfNeeded: word >> 16), UInt8(truncatingIfNeeded: word >> 8), UInt8(truncatingIfNeeded: word)]
        }
        let header = V4L2FWHTHeader(parsing: bytes)
        #expect(header == V4L2FWHTHeader(parsing: bytes + [1, 2, 3]))
        #expect(header?.width == 640 && header?.height == 360 && header?.version == 3 && header?.compressedSize == 1234)
        #expect(header?.isIntraFrame == true)
        bytes[22] = 0  // clear the I-frame bit (0x400 lives in byte 22 of the flags word)
        #expect(V4L2FWHTHeader(parsing: bytes)?.isIntraFrame == false)
        #expect(V4L2FWHTHeader(parsing: Array(bytes.prefix(43))) == nil)
        #expect(V4L2FWHTHeader(parsing: [0] + bytes.dropFirst()) == nil)
    }

    @Test("stride-converting copy of YU12")
    func strideCopy() throws {
        let layout = try #require(V4L2RawLayout(format: .yuv420, width: 4, height: 2))
        let source: [UInt8] = [1, 2, 3, 4, 0, 0, 5, 6, 7, 8, 0, 0, /* U */ 9, 10, 0, /* V */ 11, 12, 0]
        let destination = UnsafeMutableRawBufferPointer.allocate(byteCount: 8 * 2 + 4 * 1 * 2, alignment: 1)
        defer { destination.deallocate() }
        destination.initializeMemory(as: UInt8.self, repeating: 0xFF)
        let used = source.withUnsafeBytes { layout.copy(from: $0, sourceStride: 6, to: destination, destinationStride: 8) }
        #expect(used == 24)
        #expect(Array(destination.prefix(8)) == [1, 2, 3, 4, 0xFF, 0xFF, 0xFF, 0xFF])
        #expect(Array(destination[8..<12]) == [5, 6, 7, 8])
        #expect(Array(destination[16..<18]) == [9, 10])
        #expect(Array(destination[20..<22]) == [11, 12])
    }
}
