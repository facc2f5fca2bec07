import RTCBase
import Testing
import V4L2

extension KernelDrivers {
    /// The daemon's hardware path (MediaPipeline.runHardwareEncoder) on real drivers: a vivid frame
    /// goes to vicodec by DMABUF import, `encodeWaiting` returns once vicodec let go of it, and the
    /// buffer goes straight back to vivid.
    @Suite("the daemon's chain: capture → encodeWaiting → release, on vivid and vicodec")
    struct WaitedEncodeChain {
        @Test("every camera frame comes back before the next is read; one FWHT frame per call, stamped with its capture time")
        func framesComeBackAtOnce() throws {
            let capture = V4L2Capture(configuration: V4L2CaptureConfiguration(
                path: try requireNode(NodeName.camera),
                request: .vividVGA))
            try capture.start()
            defer { capture.stop() }
            let encoder = try EncodeChain.makeEncoder(stride: capture.negotiated?.format.planes.first?.bytesPerLine ?? 0,
                                                      inputMemory: .dmabuf, keyFrameInterval: 10)
            defer { encoder.stop() }

            var calls = 0, released = 0
            var outputs: [V4L2EncodedFrame] = []
            var inputTimes: [MonotonicTime] = []
            let end = monotonicNow() + .seconds(2)
            while monotonicNow() < end {
                guard let fd = capture.fileDescriptor, waitFor(fd, milliseconds: 100),
                      let frame = try capture.readFreshestFrame(now: monotonicNow()) else { continue }
                let result = try encoder.encodeWaiting(frame.encoderInput, pollTimeoutMilliseconds: 100, maximumWaits: 20)
                try capture.release(frame)
                calls += 1
                if result.inputReleased { released += 1 }
                #expect(result.submission == .queued(copied: false))
                outputs += result.frames
                inputTimes.append(frame.captureTime)
            }
            #expect(calls >= 6, "only \(calls) frames in 2 s")
            #expect(released == calls, "vicodec held \(calls - released) of \(calls) camera frames past the wait")
            #expect(outputs.count == calls)
            #expect(outputs.map(\.captureTime) == inputTimes)
            #expect(outputs.first?.isKeyFrame == true)
            #expect(outputs.allSatisfy { V4L2FWHTHeader(parsing: $0.data)?.width == 640 })
            #expect(encoder.statistics.copiedFrames == 0 && encoder.statistics.dmabufFallbacks == 0)
            #expect(capture.heldFrameCount == 0)
            print("encodeWaiting chain: \(calls) frames in 2 s, all released before the next read")
        }
    }
}
