import Glibc
import RTCBase
import Testing
import V4L2

/// vivid → V4L2M2MEncoder on vicodec (FWHT): the shape of a Raspberry Pi's camera → bcm2835-codec
/// chain, with vicodec's codec instead of H.264.
final class EncodeChain {
    let capture: V4L2Capture
    let encoder: V4L2M2MEncoder
    /// Camera frames lent to the encoder, by tag (buffer index).
    var held: [UInt64: V4L2Frame] = [:]
    var outputs: [V4L2EncodedFrame] = []
    var inputTimes = Set<MonotonicTime>()
    var busy = 0

    init(exportDMABUF: Bool = true, inputMemory: V4L2EncoderInputMemory, keyFrameInterval: Int32 = 5,
         extraControls: [V4L2Control] = []) throws {
        capture = V4L2Capture(configuration: V4L2CaptureConfiguration(
            path: try requireNode(NodeName.camera),
            request: .vividVGA,
            bufferCount: 6, exportDMABUF: exportDMABUF))
        try capture.start()
        encoder = try Self.makeEncoder(stride: capture.negotiated?.format.planes.first?.bytesPerLine ?? 0, inputMemory: inputMemory,
                                       keyFrameInterval: keyFrameInterval, extraControls: extraControls)
    }

    static func makeEncoder(stride: UInt32, inputMemory: V4L2EncoderInputMemory, keyFrameInterval: Int32 = 5,
                            extraControls: [V4L2Control] = []) throws -> V4L2M2MEncoder {
        let encoder = V4L2M2MEncoder(configuration: V4L2EncoderConfiguration(
            path: try requireNode(NodeName.encoder), width: 640, height: 480, inputPixelFormat: .yuv420, codedPixelFormat: .fwht,
            inputBytesPerLine: stride, framesPerSecond: 25, bitrate: 1_000_000, keyFrameInterval: keyFrameInterval,
            extraControls: extraControls, inputMemory: inputMemory))
        try encoder.start()
        return encoder
    }

    deinit {
        encoder.stop()
        for tag in encoder.takeReleasedInputs() { returnFrame(tag) }
        for frame in held.values { try? capture.release(frame) }
        capture.stop()
    }

    private func returnFrame(_ tag: UInt64) {
        if let frame = held.removeValue(forKey: tag) { try? capture.release(frame) }
    }

    func collect() throws {
        let output = try encoder.readEncoded()
        outputs += output.frames
        for tag in output.releasedInputTags { returnFrame(tag) }
    }

    /// Captures and encodes for `duration`: every frame the camera delivers goes to the encoder.
    func run(for duration: Duration, onSubmit: (V4L2EncodeSubmission) -> Void = { _ in }) throws {
        let end = monotonicNow() + duration
        while monotonicNow() < end {
            try collect()
            guard let fd = capture.fileDescriptor, waitFor(fd, milliseconds: 20) else { continue }
            guard let frame = try capture.readFreshestFrame(now: monotonicNow()) else { continue }
            let tag = UInt64(frame.bufferIndex)
            held[tag] = frame
            let submission = try encoder.encode(frame.encoderInput)
            onSubmit(submission)
            switch submission {
            case .busy:
                busy += 1
                returnFrame(tag)
            case .queued:
                inputTimes.insert(frame.captureTime)
            }
        }
        try collect()
    }

    /// V4L2_ENC_CMD_STOP, then reads until the last buffer (true) or the timeout (false).
    func drain(timeout: Duration = .seconds(3)) throws -> Bool {
        try encoder.beginDrain()
        let end = monotonicNow() + timeout
        while monotonicNow() < end {
            if let fd = encoder.fileDescriptor { _ = waitFor(fd, events: Int16(POLLIN | POLLPRI), milliseconds: 50) }
            let output = try encoder.readEncoded()
            outputs += output.frames
            for tag in output.releasedInputTags { returnFrame(tag) }
            if output.reachedEndOfStream { return true }
        }
        return false
    }
}

/// Encodes one raw frame and waits for its coded frame.
func encodeOne(_ encoder: V4L2M2MEncoder, _ input: V4L2EncoderInput, expectCopy: Bool) throws -> V4L2EncodedFrame {
    #expect(try encoder.encode(input) == .queued(copied: expectCopy))
    let end = monotonicNow() + .seconds(3)
    while monotonicNow() < end {
        if let fd = encoder.fileDescriptor { _ = waitFor(fd, milliseconds: 50) }
        if let frame = try encoder.readEncoded().frames.first { return frame }
    }
    throw KernelDriverTestError("vicodec gave no coded frame within 3 s")
}

extension KernelDrivers {
    @Suite("V4L2M2MEncoder on vicodec, fed by vivid")
    struct VicodecEncoder {
        @Test("zero copy: vivid's exported DMABUFs imported by vicodec; FWHT frames with the capture times, key frames by GOP_SIZE, drained")
        func dmabufChain() throws {
            let chain = try EncodeChain(inputMemory: .dmabuf, keyFrameInterval: 5)
            #expect(chain.encoder.inputMemory == .dmabuf)
            #expect(chain.encoder.codedFormat?.pixelFormat == .fwht)
            var copied = 0
            try chain.run(for: .seconds(2)) { if $0 == .queued(copied: true) { copied += 1 } }
            #expect(try chain.drain(), "no LAST buffer after V4L2_ENC_CMD_STOP")
            #expect(chain.encoder.state == .drained)

            let statistics = chain.encoder.statistics
            #expect(copied == 0 && statistics.copiedFrames == 0 && statistics.dmabufFallbacks == 0, "\(statistics)")
            // vicodec codes in software, and under TCG slower than 25 fps: the chain takes the
            // freshest frame whenever the encoder is free.
            #expect(statistics.framesSubmitted >= 8, "\(statistics.framesSubmitted) frames submitted in 2 s")
            #expect(statistics.framesEncoded == statistics.framesSubmitted, "\(statistics)")
            #expect(chain.outputs.count == statistics.framesEncoded)
            #expect(statistics.corruptedOutputs == 0)
            #expect(chain.held.isEmpty, "camera frames still lent to the encoder: \(chain.held.keys.sorted())")

            // Every output is a whole FWHT frame of the configured size, stamped with its input's capture time.
            let headers = chain.outputs.map { V4L2FWHTHeader(parsing: $0.data) }
            #expect(headers.allSatisfy { $0?.width == 640 && $0?.height == 480 })
            #expect(zip(headers, chain.outputs).allSatisfy { header, frame in
                header.map { Int($0.compressedSize) + V4L2FWHTHeader.byteCount == frame.data.count } ?? false
            })
            #expect(chain.outputs.allSatisfy { chain.inputTimes.contains($0.captureTime) }, "timestamps must be copied from the inputs")
            #expect(chain.outputs.allSatisfy { $0.data.count < 640 * 480 * 3 / 2 }, "FWHT should compress vivid's test pattern")
            var ordered = true
            for (a, b) in zip(chain.outputs, chain.outputs.dropFirst()) where !(b.captureTime > a.captureTime && b.sequence > a.sequence) {
                ordered = false
            }
            #expect(ordered)

            // GOP_SIZE 5: the first frame is intra, then at most 5 frames from one key frame to the next.
            let keys = chain.outputs.enumerated().filter { $0.element.isKeyFrame }.map(\.offset)
            #expect(keys.first == 0)
            let distances = zip(keys, keys.dropFirst()).map { $1 - $0 }
            #expect(distances.allSatisfy { $0 <= 5 }, "key frame distances \(distances)")
            #expect(statistics.keyFrames >= chain.outputs.count / 5)
            #expect(statistics.rejectedControls[.gopSize] == nil)
            print("vicodec DMABUF chain: \(statistics.framesEncoded) frames, \(statistics.keyFrames) key, busy \(chain.busy), "
                  + "sizes \(chain.outputs.map(\.data.count).min() ?? 0)…\(chain.outputs.map(\.data.count).max() ?? 0) bytes")
        }

        @Test("the imported DMABUF and the MMAP copy of one camera frame encode to identical FWHT bytes")
        func importEqualsCopy() throws {
            let capture = V4L2Capture(configuration: V4L2CaptureConfiguration(
                path: try requireNode(NodeName.camera),
                request: .vividVGA))
            try capture.start()
            defer { capture.stop() }
            let frame = try nextFrame(capture)
            defer { try? capture.release(frame) }
            let stride = capture.negotiated?.format.planes.first?.bytesPerLine ?? 0
            try #require(frame.dmabufFDs.count == 1)

            let importing = try EncodeChain.makeEncoder(stride: stride, inputMemory: .dmabuf)
            let imported = try encodeOne(importing, frame.encoderInput, expectCopy: false)
            importing.stop()  // done reading the camera buffer
            let copying = try EncodeChain.makeEncoder(stride: stride, inputMemory: .mmapCopy)
            let copied = try encodeOne(copying, frame.encoderInput, expectCopy: true)
            copying.stop()

            #expect(imported.isKeyFrame && copied.isKeyFrame)
            #expect(imported.captureTime == frame.captureTime && copied.captureTime == frame.captureTime)
            let identical = imported.data == copied.data
            #expect(identical, "DMABUF import gave \(imported.data.count) bytes, MMAP copy \(copied.data.count) bytes, contents differ")
            #expect(importing.statistics.copiedFrames == 0 && copying.statistics.copiedFrames == 1)
        }

        @Test("MMAP-and-copy fallback: a camera without DMABUF export; the importing encoder switches to copying and streams on")
        func copyFallback() throws {
            let chain = try EncodeChain(exportDMABUF: false, inputMemory: .dmabuf)
            var queued = 0, copied = 0
            try chain.run(for: .milliseconds(1500)) { submission in
                if case let .queued(wasCopied) = submission {
                    queued += 1
                    if wasCopied { copied += 1 }
                }
            }
            let statistics = chain.encoder.statistics
            #expect(chain.encoder.inputMemory == .mmapCopy)
            #expect(statistics.dmabufFallbacks == 1)
            #expect(queued >= 6 && copied == queued, "\(copied) of \(queued) frames copied")
            #expect(statistics.copiedFrames == statistics.framesSubmitted)
            // A copied frame goes back to the camera at once: nothing is lent.
            #expect(chain.held.isEmpty)
            #expect(chain.outputs.count >= queued - 4)
            #expect(chain.outputs.allSatisfy { V4L2FWHTHeader(parsing: $0.data)?.width == 640 })
        }

        @Test("controls vicodec has (GOP_SIZE, FWHT QPs) take effect; those it lacks (bitrate, FORCE_KEY_FRAME) are tolerated")
        func controls() throws {
            let capture = V4L2Capture(configuration: V4L2CaptureConfiguration(
                path: try requireNode(NodeName.camera),
                request: .vividVGA))
            try capture.start()
            defer { capture.stop() }
            let frame = try nextFrame(capture)
            defer { try? capture.release(frame) }
            let stride = capture.negotiated?.format.planes.first?.bytesPerLine ?? 0

            // The I-frame quantiser: finer (1) must code the same picture in more bytes than coarser (31).
            var sizes: [Int32: Int] = [:]
            for qp: Int32 in [1, 31] {
                let encoder = try EncodeChain.makeEncoder(stride: stride, inputMemory: .mmapCopy,
                                                          extraControls: [V4L2Control(.fwhtIFrameQP, qp)])
                #expect(encoder.statistics.rejectedControls[.fwhtIFrameQP] == nil)
                sizes[qp] = try encodeOne(encoder, frame.encoderInput, expectCopy: true).data.count
                encoder.stop()
            }
            #expect((sizes[1] ?? 0) > (sizes[31] ?? 0), "I-frame QP 1 gave \(sizes[1] ?? 0) bytes, QP 31 \(sizes[31] ?? 0)")

            // GOP_SIZE 1: every frame intra. No bitrate control, no FORCE_KEY_FRAME: recorded, not fatal.
            let encoder = try EncodeChain.makeEncoder(stride: stride, inputMemory: .mmapCopy, keyFrameInterval: 1)
            #expect(encoder.statistics.rejectedControls == [.videoBitrate: EINVAL], "\(encoder.statistics.rejectedControls)")
            try encoder.setBitrate(500_000)
            encoder.requestKeyFrame()
            var keys = 0
            for _ in 0..<3 {
                if try encodeOne(encoder, frame.encoderInput, expectCopy: true).isKeyFrame { keys += 1 }
            }
            #expect(keys == 3)
            #expect(encoder.statistics.rejectedControls[.forceKeyFrame] == EINVAL)
            #expect(encoder.state == .streaming)
            encoder.stop()
            print("vicodec controls: I-frame sizes \(sizes), rejected \(encoder.statistics.rejectedControls)")
        }
    }
}
