import RTCBase

/// How raw frames reach the encoder's OUTPUT queue.
public enum V4L2EncoderInputMemory: Equatable, Sendable {
    /// Import the camera's exported DMABUF (zero copy); falls back to `.mmapCopy` if the driver refuses.
    case dmabuf
    /// Copy each frame into the encoder's own MMAP buffers.
    case mmapCopy
}

public struct V4L2EncoderConfiguration: Equatable, Sendable {
    /// bcm2835-codec's encoder on Raspberry Pi OS.
    public var path: String
    public var width: UInt32
    public var height: UInt32
    /// Raw input layout: .yuv420 (YU12), .nv12 or .yuyv; must match the camera's for DMABUF import.
    public var inputPixelFormat: V4L2PixelFormat
    /// What the CAPTURE queue produces: .h264 (bcm2835-codec, the daemon's case) or .fwht (vicodec,
    /// the virtual test board's encoder). Other codecs get the generic controls (bitrate, GOP size).
    public var codedPixelFormat: V4L2PixelFormat
    /// Stride of the raw input (0: let the driver choose; DMABUF import needs the camera's stride).
    public var inputBytesPerLine: UInt32
    public var framesPerSecond: UInt32
    public var bitrate: Int32
    /// Frames between key frames: H264_I_PERIOD for H.264, GOP_SIZE for other codecs.
    public var keyFrameInterval: Int32
    /// H.264 only.
    public var profile: V4L2H264Profile
    /// H.264 only.
    public var level: V4L2H264Level
    /// SPS/PPS before every IDR, so a viewer joining late can decode from any key frame (H.264 only).
    public var repeatSequenceHeader: Bool
    /// Driver-specific controls set after the standard ones (e.g. vicodec's FWHT_I_FRAME_QP); a
    /// refused one lands in `rejectedControls` like the others.
    public var extraControls: [V4L2Control]
    public var inputMemory: V4L2EncoderInputMemory
    public var inputBufferCount: Int
    public var codedBufferCount: Int

    public init(path: String = "/dev/video11", width: UInt32, height: UInt32, inputPixelFormat: V4L2PixelFormat = .yuv420,
                codedPixelFormat: V4L2PixelFormat = .h264,
                inputBytesPerLine: UInt32 = 0, framesPerSecond: UInt32 = 30, bitrate: Int32 = 2_000_000,
                keyFrameInterval: Int32 = 60, profile: V4L2H264Profile = .constrainedBaseline, level: V4L2H264Level = .level3_1,
                repeatSequenceHeader: Bool = true, extraControls: [V4L2Control] = [], inputMemory: V4L2EncoderInputMemory = .dmabuf,
                inputBufferCount: Int = 4, codedBufferCount: Int = 4) {
        self.path = path; self.width = width; self.height = height; self.inputPixelFormat = inputPixelFormat
        self.codedPixelFormat = codedPixelFormat; self.extraControls = extraControls
        self.inputBytesPerLine = inputBytesPerLine; self.framesPerSecond = framesPerSecond; self.bitrate = bitrate
        self.keyFrameInterval = keyFrameInterval; self.profile = profile; self.level = level
        self.repeatSequenceHeader = repeatSequenceHeader; self.inputMemory = inputMemory
        self.inputBufferCount = inputBufferCount; self.codedBufferCount = codedBufferCount
    }
}

/// A raw frame offered to the encoder. `tag` comes back in `releasedInputTags` once the encoder no
/// longer reads the memory (immediately for the copy path), so the camera buffer can be requeued.
public struct V4L2EncoderInput: @unchecked Sendable {
    public var planes: [UnsafeRawBufferPointer]
    public var planeLengths: [Int]
    public var dmabufFDs: [Int32]
    public var bytesPerLine: UInt32
    public var captureTime: MonotonicTime
    public var tag: UInt64

    public init(planes: [UnsafeRawBufferPointer], planeLengths: [Int], dmabufFDs: [Int32], bytesPerLine: UInt32,
                captureTime: MonotonicTime, tag: UInt64) {
        self.planes = planes; self.planeLengths = planeLengths; self.dmabufFDs = dmabufFDs
        self.bytesPerLine = bytesPerLine; self.captureTime = captureTime; self.tag = tag
    }
}

extension V4L2Frame {
    /// This frame as encoder input, tagged with its buffer index (hand the frame back to the capture
    /// when the tag is released).
    public var encoderInput: V4L2EncoderInput {
        V4L2EncoderInput(planes: planes, planeLengths: planeLengths, dmabufFDs: dmabufFDs,
                         bytesPerLine: format.planes.first?.bytesPerLine ?? 0, captureTime: captureTime, tag: UInt64(bufferIndex))
    }
}

/// One encoded access unit (Annex-B, as the encoder wrote it) with the capture time of its input.
public struct V4L2EncodedFrame: Equatable, Sendable {
    public var data: [UInt8]
    public var isKeyFrame: Bool
    public var captureTime: MonotonicTime
    public var sequence: UInt32
    public init(data: [UInt8], isKeyFrame: Bool, captureTime: MonotonicTime, sequence: UInt32) {
        self.data = data; self.isKeyFrame = isKeyFrame; self.captureTime = captureTime; self.sequence = sequence
    }
}

/// What one `readEncoded()` collected.
public struct V4L2EncoderOutput: Equatable, Sendable {
    public var frames: [V4L2EncodedFrame] = []
    /// Inputs the encoder is done with (return the camera frames with these tags).
    public var releasedInputTags: [UInt64] = []
    /// The drain finished (a buffer with V4L2_BUF_FLAG_LAST or the EOS event).
    public var reachedEndOfStream = false
    public init() {}
}

public enum V4L2EncodeSubmission: Equatable, Sendable {
    /// Queued; `copied` when the bytes were copied (the input's tag is already released).
    case queued(copied: Bool)
    /// Every input buffer is still in the encoder: the frame was not taken (count it as a drop).
    case busy
}

public struct V4L2EncoderStatistics: Equatable, Sendable {
    public var framesSubmitted = 0
    public var framesEncoded = 0
    public var keyFrames = 0
    public var framesRejectedBusy = 0
    public var copiedFrames = 0
    /// DMABUF import failed (REQBUFS or QBUF): the encoder switched to copying.
    public var dmabufFallbacks = 0
    /// Controls the driver refused (id → errno), at start or later (FORCE_KEY_FRAME, VIDEO_BITRATE);
    /// the encoder runs with the driver's defaults for them and does not send them again.
    public var rejectedControls: [V4L2ControlID: Int32] = [:]
    public var corruptedOutputs = 0
    public init() {}
}

public enum V4L2EncoderState: Equatable, Sendable {
    case idle, streaming, draining, drained, deviceGone, stopped
}

/// A V4L2 memory-to-memory stateful encoder (H.264, or the configured coded format) (kernel "Memory-to-Memory Stateful Video Encoder
/// Interface", Documentation/userspace-api/media/v4l/dev-encoder.rst): raw frames go into the
/// OUTPUT queue (DMABUF import or MMAP copy), access units come out of the CAPTURE queue (MMAP).
public final class V4L2M2MEncoder {
    public private(set) var configuration: V4L2EncoderConfiguration
    public private(set) var state: V4L2EncoderState = .idle
    public private(set) var statistics = V4L2EncoderStatistics()
    /// The OUTPUT (raw) format the driver accepted.
    public private(set) var inputFormat: V4L2Format?
    /// The CAPTURE (coded) format the driver accepted.
    public private(set) var codedFormat: V4L2Format?
    public private(set) var inputMemory: V4L2EncoderInputMemory

    private let opener: any V4L2DeviceOpener
    private var device: (any V4L2DeviceIO)?
    private var outputType: V4L2BufferType = .videoOutput
    private var captureType: V4L2BufferType = .videoCapture
    private var inputPlaneCount = 1
    private var codedPlaneCount = 1
    /// OUTPUT slots: index → tag of the input it holds (nil = free). MMAP mappings for the copy path.
    private var inputSlots: [UInt64?] = []
    private var inputMappings: [[UnsafeMutableRawBufferPointer]] = []
    private var codedMappings: [[UnsafeMutableRawBufferPointer]] = []
    private var releasedTags: [UInt64] = []
    private var keyFrameRequested = false

    public init(configuration: V4L2EncoderConfiguration, opener: some V4L2DeviceOpener = KernelV4L2Opener()) {
        self.configuration = configuration
        self.opener = opener
        self.inputMemory = configuration.inputMemory
    }

    deinit { teardown(streamOff: true) }

    /// POLLIN: an access unit is ready; POLLOUT: an input buffer is free again; POLLPRI: an event.
    public var fileDescriptor: Int32? { device?.fileDescriptor }

    /// Waits (through the device seam) until an access unit, a free input buffer or an event is
    /// ready; false on timeout.
    public func waitForOutput(timeoutMilliseconds: Int32) throws(V4L2Error) -> Bool {
        guard let device else { throw state == .deviceGone ? .deviceGone : .invalidState("wait while \(state)") }
        do {
            return !(try device.poll(events: [.readable, .priority], timeoutMilliseconds: timeoutMilliseconds)).isEmpty
        } catch {
            if error == .deviceGone { deviceLost() }
            throw error
        }
    }

    // MARK: lifecycle

    /// The initialization sequence of dev-encoder.rst: coded format on CAPTURE, raw format on
    /// OUTPUT, frame rate, controls, buffers on both queues, STREAMON both.
    public func start() throws(V4L2Error) {
        guard state == .idle || state == .stopped || state == .deviceGone || state == .drained else {
            throw .invalidState("start while \(state)")
        }
        do {
            try openAndConfigure()
            state = .streaming
        } catch {
            teardown(streamOff: error != .deviceGone)
            state = error == .deviceGone ? .deviceGone : .stopped
            throw error
        }
    }

    public func stop() {
        guard device != nil else { return }
        teardown(streamOff: true)
        state = .stopped
    }

    private func openAndConfigure() throws(V4L2Error) {
        let device = try opener.open(path: configuration.path)
        self.device = device
        let capability = try device.queryCapability()
        guard capability.kind == .memoryToMemory, capability.supportsStreaming else {
            throw .unsupportedDevice(path: configuration.path, reason: "not a streaming memory-to-memory device")
        }
        outputType = capability.outputBufferType
        captureType = capability.captureBufferType
        // The EOS event marks the end of a drain; drivers without it still flag the last buffer.
        do { try device.subscribeEvent(.endOfStream) } catch { if error == .deviceGone { throw error } }

        // 1. Coded format first: it decides what raw formats and sizes the OUTPUT queue allows.
        let codedRequest = V4L2Format(type: captureType, width: configuration.width, height: configuration.height,
                                      pixelFormat: configuration.codedPixelFormat, planes: [V4L2PlaneFormat(bytesPerLine: 0, sizeImage: 0)])
        let coded = try device.setFormat(codedRequest)
        guard coded.pixelFormat == configuration.codedPixelFormat else {
            throw .unsupportedDevice(path: configuration.path,
                                     reason: "no \(configuration.codedPixelFormat) on the CAPTURE queue (got \(coded.pixelFormat))")
        }
        codedFormat = coded
        codedPlaneCount = captureType.isMultiplanar ? max(1, coded.planes.count) : 1

        // 2. Raw format on OUTPUT.
        let rawRequest = V4L2Format(type: outputType, width: configuration.width, height: configuration.height,
                                    pixelFormat: configuration.inputPixelFormat,
                                    planes: [V4L2PlaneFormat(bytesPerLine: configuration.inputBytesPerLine, sizeImage: 0)])
        let raw = try device.setFormat(rawRequest)
        guard raw.pixelFormat == configuration.inputPixelFormat else {
            throw .noAcceptableFormat(requested: [configuration.inputPixelFormat], offered: [raw.pixelFormat])
        }
        inputFormat = raw
        inputPlaneCount = outputType.isMultiplanar ? max(1, raw.planes.count) : 1

        // 3. Frame rate on OUTPUT (rate control needs it); drivers without S_PARM keep their default.
        if configuration.framesPerSecond > 0 {
            do { _ = try device.setStreamParameters(type: outputType, timePerFrame: V4L2Fraction(1, configuration.framesPerSecond)) }
            catch { if error == .deviceGone { throw error } }
        }

        // 4. Controls, one by one so one the driver lacks does not block the others.
        for control in Self.startControls(configuration) {
            try setTolerated(control, on: device)
        }

        // 5. Buffers: OUTPUT (DMABUF, else MMAP) and CAPTURE (MMAP, all queued).
        if inputMemory == .dmabuf {
            do throws(V4L2Error) {
                let granted = try device.requestBuffers(type: outputType, memory: .dmabuf, count: UInt32(configuration.inputBufferCount))
                guard granted >= 1 else { throw V4L2Error.tooFewBuffers(requested: configuration.inputBufferCount, granted: 0) }
                inputSlots = Array(repeating: nil, count: Int(granted))
                inputMappings = Array(repeating: [], count: Int(granted))
            } catch {
                if error == .deviceGone { throw error }
                statistics.dmabufFallbacks += 1
                inputMemory = .mmapCopy
            }
        }
        if inputMemory == .mmapCopy { try setUpCopyInputs(device) }

        let codedGranted = Int(try device.requestBuffers(type: captureType, memory: .mmap, count: UInt32(configuration.codedBufferCount)))
        guard codedGranted >= 1 else { throw .tooFewBuffers(requested: configuration.codedBufferCount, granted: codedGranted) }
        codedMappings = []
        for index in 0..<UInt32(codedGranted) {
            let info = try device.queryBuffer(type: captureType, memory: .mmap, index: index, planeCount: codedPlaneCount)
            codedMappings.append([])
            for plane in info.planes.prefix(codedPlaneCount) {
                codedMappings[codedMappings.count - 1].append(try device.mapBuffer(length: Int(plane.length), offset: plane.memoryOffset))
            }
        }
        for index in 0..<UInt32(codedGranted) { try queueCoded(index) }

        // 6. Stream on both queues.
        try device.streamOn(type: outputType)
        try device.streamOn(type: captureType)
    }

    private func setUpCopyInputs(_ device: any V4L2DeviceIO) throws(V4L2Error) {
        let granted = Int(try device.requestBuffers(type: outputType, memory: .mmap, count: UInt32(configuration.inputBufferCount)))
        guard granted >= 1 else { throw .tooFewBuffers(requested: configuration.inputBufferCount, granted: granted) }
        inputSlots = Array(repeating: nil, count: granted)
        inputMappings = []
        for index in 0..<UInt32(granted) {
            let info = try device.queryBuffer(type: outputType, memory: .mmap, index: index, planeCount: inputPlaneCount)
            inputMappings.append([])
            for plane in info.planes.prefix(inputPlaneCount) {
                inputMappings[inputMappings.count - 1].append(try device.mapBuffer(length: Int(plane.length), offset: plane.memoryOffset))
            }
        }
    }

    /// Switches a running encoder from DMABUF import to copying (the driver refused a DMABUF at
    /// QBUF time, e.g. memory it cannot reach): STREAMOFF OUTPUT (returns every input), free the
    /// DMABUF slots, set up MMAP slots, STREAMON OUTPUT again.
    private func fallBackToCopy(_ device: any V4L2DeviceIO) throws(V4L2Error) {
        statistics.dmabufFallbacks += 1
        try device.streamOff(type: outputType)
        for tag in inputSlots.compactMap({ $0 }) { releasedTags.append(tag) }
        _ = try device.requestBuffers(type: outputType, memory: .dmabuf, count: 0)
        inputMemory = .mmapCopy
        try setUpCopyInputs(device)
        try device.streamOn(type: outputType)
    }

    // MARK: encoding

    /// Takes a raw frame into the OUTPUT queue (non-blocking). Call `readEncoded()` when the fd is readable.
    public func encode(_ input: V4L2EncoderInput, forceKeyFrame: Bool = false) throws(V4L2Error) -> V4L2EncodeSubmission {
        guard state == .streaming, let device else {
            if state == .deviceGone { throw .deviceGone }
            throw .invalidState("encode while \(state)")
        }
        do throws(V4L2Error) {
            try reclaimInputs(device)
            guard let slot = inputSlots.firstIndex(where: { $0 == nil }) else {
                statistics.framesRejectedBusy += 1
                return .busy
            }
            if forceKeyFrame || keyFrameRequested {
                // A driver without FORCE_KEY_FRAME (vicodec) keeps its own key frame period.
                try setTolerated(V4L2Control(.forceKeyFrame, 1), on: device)
                keyFrameRequested = false
            }
            let timestamp = input.captureTime.nanoseconds / 1000
            if inputMemory == .dmabuf, !canImport(input) {
                // A frame without importable DMABUFs (the camera could not export, or its stride
                // differs): this and the following frames are copied.
                try fallBackToCopy(device)
            }
            if inputMemory == .dmabuf {
                let planes = (0..<inputPlaneCount).map { i in
                    V4L2BufferPlane(length: UInt32(clamping: input.planeLengths[i]), bytesUsed: UInt32(clamping: input.planes[i].count),
                                    dmabufFD: input.dmabufFDs[i])
                }
                do {
                    try device.queueBuffer(V4L2Buffer(index: UInt32(slot), type: outputType, memory: .dmabuf,
                                                      timestampMicroseconds: timestamp, planes: planes))
                    inputSlots[slot] = input.tag
                    statistics.framesSubmitted += 1
                    return .queued(copied: false)
                } catch {
                    if error == .deviceGone { throw error }
                    try fallBackToCopy(device)
                }
            }
            guard let copySlot = inputSlots.firstIndex(where: { $0 == nil }) else {
                statistics.framesRejectedBusy += 1
                return .busy
            }
            let used = copy(input, into: inputMappings[copySlot])
            let planes = used.map { V4L2BufferPlane(length: 0, bytesUsed: UInt32(clamping: $0)) }
            try device.queueBuffer(V4L2Buffer(index: UInt32(copySlot), type: outputType, memory: .mmap,
                                              timestampMicroseconds: timestamp, planes: planes))
            inputSlots[copySlot] = UInt64.max  // busy, but the input itself is free already
            releasedTags.append(input.tag)
            statistics.framesSubmitted += 1
            statistics.copiedFrames += 1
            return .queued(copied: true)
        } catch {
            if error == .deviceGone { deviceLost() }
            throw error
        }
    }

    /// Collects finished access units (requeueing their buffers at once) and released inputs.
    public func readEncoded() throws(V4L2Error) -> V4L2EncoderOutput {
        var output = V4L2EncoderOutput()
        guard let device, state == .streaming || state == .draining else {
            if state == .deviceGone { output.releasedInputTags = takeReleasedInputs() }
            return output
        }
        do throws(V4L2Error) {
            try reclaimInputs(device)
            while let coded = try device.dequeueBuffer(type: captureType, memory: .mmap, planeCount: codedPlaneCount) {
                let index = Int(coded.index)
                if coded.flags.contains(.error) {
                    statistics.corruptedOutputs += 1
                } else if coded.totalBytesUsed > 0, index < codedMappings.count {
                    var data: [UInt8] = []
                    data.reserveCapacity(coded.totalBytesUsed)
                    for (plane, mapping) in zip(coded.planes, codedMappings[index]) {
                        let end = min(Int(plane.bytesUsed), mapping.count)
                        let start = min(Int(plane.dataOffset), end)
                        data.append(contentsOf: UnsafeRawBufferPointer(mapping)[start..<end])
                    }
                    let isKey = coded.flags.contains(.keyFrame) || codedFrameIsIntra(data)
                    statistics.framesEncoded += 1
                    if isKey { statistics.keyFrames += 1 }
                    output.frames.append(V4L2EncodedFrame(data: data, isKeyFrame: isKey,
                                                          captureTime: MonotonicTime(nanoseconds: coded.timestampMicroseconds * 1000),
                                                          sequence: coded.sequence))
                }
                if coded.flags.contains(.last) {
                    output.reachedEndOfStream = true
                    state = .drained
                    break  // after LAST the queue returns EPIPE until restarted
                }
                try queueCoded(coded.index)
            }
            while let event = try device.dequeueEvent() {
                if event == .endOfStream, state == .draining { output.reachedEndOfStream = true }
            }
        } catch {
            if error == .deviceGone { deviceLost() }
            throw error  // released inputs stay for `takeReleasedInputs()`
        }
        output.releasedInputTags = takeReleasedInputs()
        return output
    }

    /// Changes the target bitrate while streaming (VIDIOC_S_EXT_CTRLS VIDEO_BITRATE). A driver
    /// without the control (it is in `rejectedControls`) keeps its own rate; only `.deviceGone` is thrown.
    public func setBitrate(_ bitsPerSecond: Int32) throws(V4L2Error) {
        configuration.bitrate = bitsPerSecond
        guard let device, state == .streaming else { return }
        do { try setTolerated(V4L2Control(.videoBitrate, bitsPerSecond), on: device) } catch {
            if error == .deviceGone { deviceLost() }
            throw error
        }
    }

    /// The next submitted frame is coded as an IDR (FORCE_KEY_FRAME set just before it is queued).
    public func requestKeyFrame() { keyFrameRequested = true }

    /// Starts a drain (V4L2_ENC_CMD_STOP): frames already queued still come out, the last one with
    /// V4L2_BUF_FLAG_LAST; `readEncoded` reports `reachedEndOfStream`.
    public func beginDrain() throws(V4L2Error) {
        guard state == .streaming, let device else { throw .invalidState("drain while \(state)") }
        do { try device.encoderCommand(.stop) } catch {
            if error == .deviceGone { deviceLost() }
            throw error
        }
        state = .draining
    }

    /// Input tags released outside `readEncoded` (after an error, a fallback or `stop`).
    public func takeReleasedInputs() -> [UInt64] {
        defer { releasedTags = [] }
        return releasedTags
    }

    // MARK: internals

    /// The controls `start` sets, in order: the bitrate, the codec's own key-frame and stream
    /// controls, then the configuration's extra controls.
    static func startControls(_ configuration: V4L2EncoderConfiguration) -> [V4L2Control] {
        var controls = [V4L2Control(.videoBitrate, configuration.bitrate)]
        if configuration.codedPixelFormat == .h264 {
            controls += [
                V4L2Control(.h264Profile, configuration.profile.rawValue),
                V4L2Control(.h264Level, configuration.level.rawValue),
                V4L2Control(.h264IFramePeriod, configuration.keyFrameInterval),
                V4L2Control(.repeatSequenceHeader, configuration.repeatSequenceHeader ? 1 : 0),
            ]
        } else {
            controls.append(V4L2Control(.gopSize, configuration.keyFrameInterval))
        }
        return controls + configuration.extraControls
    }

    /// Sets one control; a refusal (the driver lacks it or rejects the value) is recorded in
    /// `rejectedControls` and the control is not sent again. Only `.deviceGone` is thrown.
    private func setTolerated(_ control: V4L2Control, on device: any V4L2DeviceIO) throws(V4L2Error) {
        guard statistics.rejectedControls[control.id] == nil else { return }
        do { try device.setControls([control]) } catch {
            if error == .deviceGone { throw error }
            if case let .ioctl(_, code) = error { statistics.rejectedControls[control.id] = code }
        }
    }

    /// Codecs whose driver does not flag key frames on the buffer: FWHT says it in its frame header.
    private func codedFrameIsIntra(_ data: [UInt8]) -> Bool {
        guard configuration.codedPixelFormat == .fwht else { return false }
        return V4L2FWHTHeader(parsing: data)?.isIntraFrame ?? false
    }

    private func canImport(_ input: V4L2EncoderInput) -> Bool {
        guard input.dmabufFDs.count >= inputPlaneCount, input.planes.count >= inputPlaneCount,
              input.planeLengths.count >= inputPlaneCount else { return false }
        // The encoder reads with its own stride; a different one would shear the picture.
        let stride = inputFormat?.planes.first?.bytesPerLine ?? 0
        return stride == 0 || input.bytesPerLine == stride
    }

    /// Dequeues OUTPUT buffers the encoder has consumed and frees their slots.
    private func reclaimInputs(_ device: any V4L2DeviceIO) throws(V4L2Error) {
        let memory: V4L2Memory = inputMemory == .dmabuf ? .dmabuf : .mmap
        while let done = try device.dequeueBuffer(type: outputType, memory: memory, planeCount: inputPlaneCount) {
            let index = Int(done.index)
            guard index < inputSlots.count else { continue }
            if let tag = inputSlots[index], tag != UInt64.max { releasedTags.append(tag) }
            inputSlots[index] = nil
        }
    }

    private func queueCoded(_ index: UInt32) throws(V4L2Error) {
        guard let device else { throw .invalidState("no device") }
        let planes = Array(repeating: V4L2BufferPlane(), count: codedPlaneCount)
        try device.queueBuffer(V4L2Buffer(index: index, type: captureType, memory: .mmap, planes: planes))
    }

    /// Copies the input into an MMAP slot, converting the stride when the encoder's differs.
    /// Returns bytes used per plane.
    private func copy(_ input: V4L2EncoderInput, into mappings: [UnsafeMutableRawBufferPointer]) -> [Int] {
        let destinationStride = Int(inputFormat?.planes.first?.bytesPerLine ?? 0)
        let sourceStride = Int(input.bytesPerLine)
        var used: [Int] = []
        for (i, destination) in mappings.enumerated() {
            let source = i < input.planes.count ? input.planes[i] : UnsafeRawBufferPointer(start: nil, count: 0)
            if mappings.count == 1, sourceStride > 0, destinationStride > 0, sourceStride != destinationStride,
               let layout = V4L2RawLayout(format: configuration.inputPixelFormat, width: Int(configuration.width), height: Int(configuration.height)) {
                used.append(layout.copy(from: source, sourceStride: sourceStride, to: destination, destinationStride: destinationStride))
            } else {
                let count = min(source.count, destination.count)
                if count > 0, let from = source.baseAddress, let to = destination.baseAddress { to.copyMemory(from: from, byteCount: count) }
                used.append(count)
            }
        }
        return used
    }

    private func deviceLost() {
        teardown(streamOff: false)
        state = .deviceGone
    }

    private func teardown(streamOff: Bool) {
        guard let device else { return }
        if streamOff {
            try? device.streamOff(type: outputType)
            try? device.streamOff(type: captureType)
        }
        for tag in inputSlots.compactMap({ $0 }) where tag != UInt64.max { releasedTags.append(tag) }
        inputSlots = []
        for mapping in inputMappings.joined() { device.unmapBuffer(mapping) }
        for mapping in codedMappings.joined() { device.unmapBuffer(mapping) }
        inputMappings = []
        codedMappings = []
        device.close()
        self.device = nil
    }
}

/// Plane geometry of the raw formats the encoder takes, for stride-converting copies of a
/// single-planar buffer (all planes contiguous).
struct V4L2RawLayout {
    /// (rows, bytes per row at stride 1×, stride divisor) per plane.
    var planes: [(rows: Int, rowBytes: Int, strideDivisor: Int)]

    init?(format: V4L2PixelFormat, width: Int, height: Int) {
        switch format {
        case .yuv420:
            planes = [(height, width, 1), ((height + 1) / 2, (width + 1) / 2, 2), ((height + 1) / 2, (width + 1) / 2, 2)]
        case .nv12:
            planes = [(height, width, 1), ((height + 1) / 2, width, 1)]
        case .yuyv, .uyvy:
            planes = [(height, width * 2, 1)]
        default:
            return nil
        }
    }

    /// Row-by-row copy; returns the bytes written into `destination` (its bytesused).
    func copy(from source: UnsafeRawBufferPointer, sourceStride: Int, to destination: UnsafeMutableRawBufferPointer, destinationStride: Int) -> Int {
        var sourceOffset = 0, destinationOffset = 0
        for plane in planes {
            let sourcePlaneStride = sourceStride / plane.strideDivisor
            let destinationPlaneStride = destinationStride / plane.strideDivisor
            let rowBytes = min(plane.rowBytes, sourcePlaneStride, destinationPlaneStride)
            for row in 0..<plane.rows {
                let from = sourceOffset + row * sourcePlaneStride
                let to = destinationOffset + row * destinationPlaneStride
                guard from + rowBytes <= source.count, to + rowBytes <= destination.count else { return min(destinationOffset + row * destinationPlaneStride, destination.count) }
                destination.baseAddress!.advanced(by: to).copyMemory(from: source.baseAddress!.advanced(by: from), byteCount: rowBytes)
            }
            sourceOffset += plane.rows * sourcePlaneStride
            destinationOffset += plane.rows * destinationPlaneStride
        }
        return min(destinationOffset, destination.count)
    }
}

/// The header vicodec writes before every FWHT frame (`struct fwht_cframe_hdr`): two magic words,
/// then big-endian version, width, height, flags, colorspace, transfer function, Y'CbCr encoding,
/// quantization and the compressed size.
public struct V4L2FWHTHeader: Equatable, Sendable {
    public static let byteCount = 44
    /// V4L2_FWHT_FL_I_FRAME: every block is intra coded (a key frame).
    public static let iFrameFlag: UInt32 = 1 << 10
    public var version: UInt32
    public var width: UInt32
    public var height: UInt32
    public var flags: UInt32
    /// Bytes of coded data after the header.
    public var compressedSize: UInt32

    public var isIntraFrame: Bool { flags & Self.iFrameFlag != 0 }

    /// nil unless `bytes` starts with the FWHT magic (4F4F4F4F FFFFFFFF) and a whole header.
    public init?(parsing bytes: [UInt8]) {
        guard bytes.count >= Self.byteCount, bytes[0..<4].allSatisfy({ $0 == 0x4F }), bytes[4..<8].allSatisfy({ $0 == 0xFF }) else {
            return nil
        }
        func word(_ index: Int) -> UInt32 {
            bytes[index * 4..<index * 4 + 4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        }
        version = word(2); width = word(3); height = word(4); flags = word(5); compressedSize = word(10)
    }
}
