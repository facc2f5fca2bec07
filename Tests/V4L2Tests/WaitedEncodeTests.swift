import RTCBase
import Testing
@testable import V4L2

/// The daemon's hardware path: capture → encodeWaiting → release the camera buffer at once.
@Suite("encodeWaiting: one frame in, its buffer free again before the call returns")
struct WaitedEncodeTests {
    @Test("zero copy: more frames than camera buffers, each released right after its call, IDR first and on request")
    func framesCycleThroughTheCameraBuffers() throws {
        let rig = try V4L2EncoderTests.Rig()
        var keyframes: [Int] = []
        for index in 0 ..< 10 {
            rig.camera.produce(1)
            let frame = try #require(try rig.capture.readFreshestFrame(now: .zero))
            let result = try rig.encoder.encodeWaiting(frame.encoderInput, forceKeyFrame: index == 6)
            #expect(result.submission == .queued(copied: false))
            #expect(result.inputReleased)
            #expect(result.frames.count == 1)
            if result.frames.first?.isKeyFrame == true { keyframes.append(index) }
            try rig.capture.release(frame)
        }
        #expect(keyframes == [0, 6])
        #expect(rig.encoder.statistics.framesEncoded == 10)
        #expect(rig.encoder.statistics.copiedFrames == 0)
        #expect(rig.capture.statistics.framesDroppedConsumerBusy == 0)
    }

    @Test("copy fallback: an encoder without DMABUF import still gives a frame per call")
    func copyPath() throws {
        let rig = try V4L2EncoderTests.Rig { $0.supportsDMABUF = false }
        for _ in 0 ..< 6 {
            rig.camera.produce(1)
            let frame = try #require(try rig.capture.readFreshestFrame(now: .zero))
            let result = try rig.encoder.encodeWaiting(frame.encoderInput)
            #expect(result.submission == .queued(copied: true))
            #expect(result.inputReleased && result.frames.count == 1)
            try rig.capture.release(frame)
        }
        #expect(rig.encoder.statistics.copiedFrames == 6)
    }

    @Test("a wedged encoder: the call gives up after its waits and says the input is still held")
    func wedgedEncoder() throws {
        let rig = try V4L2EncoderTests.Rig()
        rig.encoderNode.holdInputs = true
        rig.camera.produce(1)
        let frame = try #require(try rig.capture.readFreshestFrame(now: .zero))
        let result = try rig.encoder.encodeWaiting(frame.encoderInput, pollTimeoutMilliseconds: 1, maximumWaits: 3)
        #expect(result.submission == .queued(copied: false))
        #expect(!result.inputReleased)
        #expect(result.frames.isEmpty)
        #expect(rig.encoderNode.log.filter { $0 == "DQBUF videoCaptureMultiplanar" }.count >= 4)
        // It wakes up: the next call collects the held frame's output and the new one's.
        rig.encoderNode.holdInputs = false
        rig.encoderNode.pump()
        try rig.capture.release(frame)
        rig.camera.produce(1)
        let next = try #require(try rig.capture.readFreshestFrame(now: .zero))
        let later = try rig.encoder.encodeWaiting(next.encoderInput)
        #expect(later.inputReleased && later.frames.count == 2)
    }

    @Test("the encoder unplugged mid-stream: deviceGone, typed")
    func encoderGone() throws {
        let rig = try V4L2EncoderTests.Rig()
        rig.camera.produce(1)
        let frame = try #require(try rig.capture.readFreshestFrame(now: .zero))
        rig.encoderNode.unplugged = true
        #expect(throws: V4L2Error.deviceGone) { try rig.encoder.encodeWaiting(frame.encoderInput) }
        #expect(rig.encoder.state == .deviceGone)
    }

    @Test("camera controls: refused by a driver without them (typed errno), refused when not streaming")
    func cameraControls() throws {
        let rig = try V4L2EncoderTests.Rig()
        #expect(throws: V4L2Error.ioctl(request: "VIDIOC_S_EXT_CTRLS", errno: 25)) {
            try rig.capture.setControls([V4L2Control(.forceKeyFrame, 1)])
        }
        rig.capture.stop()
        #expect(throws: V4L2Error.invalidState("setControls while not streaming")) {
            try rig.capture.setControls([V4L2Control(.forceKeyFrame, 1)])
        }
    }
}

@Suite("restartStreaming: STREAMOFF/STREAMON on the open device")
struct RestartStreamingTests {
    @Test("buffers come back to the driver, held frames stay valid and are requeued on release, the device is never closed")
    func restartKeepsTheSession() throws {
        let rig = try V4L2EncoderTests.Rig()
        rig.camera.produce(1)
        let held = try #require(try rig.capture.readFreshestFrame(now: .zero))
        let opensBefore = rig.camera.log.filter { $0 == "QUERYCAP" }.count
        try rig.capture.restartStreaming()
        #expect(rig.camera.log.suffix(5).first == "STREAMOFF")
        #expect(rig.camera.log.last == "STREAMON")
        #expect(rig.camera.log.filter { $0 == "QUERYCAP" }.count == opensBefore)
        #expect(!rig.camera.log.contains("close"))
        #expect(rig.camera.queued.count == rig.camera.bufferCount - 1, "every buffer but the held one queued again")
        #expect(rig.capture.statistics.streamRestarts == 1)
        try rig.capture.release(held)
        #expect(rig.camera.queued.count == rig.camera.bufferCount)
        rig.camera.produce(2)
        #expect(try rig.capture.readFreshestFrame(now: .zero) != nil)
    }

    @Test("gone or stopped: typed errors")
    func errors() throws {
        let rig = try V4L2EncoderTests.Rig()
        rig.camera.unplugged = true
        #expect(throws: V4L2Error.deviceGone) { try rig.capture.restartStreaming() }
        #expect(rig.capture.state == .deviceGone)
        #expect(throws: V4L2Error.deviceGone) { try rig.capture.restartStreaming() }
        let other = try V4L2EncoderTests.Rig()
        other.capture.stop()
        #expect(throws: V4L2Error.invalidState("restartStreaming while not streaming")) { try other.capture.restartStreaming() }
    }
}
