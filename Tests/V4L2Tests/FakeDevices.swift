import V4L2

/// Memory standing in for DMABUFs: exported fds → the bytes behind them (shared by camera and encoder fakes).
final class FakeDMABUFTable {
    var buffers: [Int32: UnsafeMutableRawBufferPointer] = [:]
    var open: Set<Int32> = []
    var nextFD: Int32 = 1000
}

/// Opens fake nodes by path.
final class FakeOpener: V4L2DeviceOpener, @unchecked Sendable {
    var nodes: [String: FakeNode] = [:]
    var opens = 0
    func open(path: String) throws(V4L2Error) -> any V4L2DeviceIO {
        guard let node = nodes[path] else { throw .open(path: path, errno: 2) }
        if node.unplugged { throw .deviceGone }
        node.isOpen = true
        node.didOpen()
        opens += 1
        return node
    }
}

/// Shared plumbing: memory per (queue, index), mmap by offset, unplug, call log. Every ioctl not
/// overridden fails with ENOTTY like a driver without it.
class FakeNode: V4L2DeviceIO {
    var fileDescriptor: Int32 = 42
    var isOpen = false
    var unplugged = false
    var log: [String] = []
    let dmabufs: FakeDMABUFTable
    var memory: [UInt32: UnsafeMutableRawBufferPointer] = [:]   // mmap offset → bytes
    var liveMappings = 0
    var capability: V4L2Capability

    init(capability: V4L2Capability, dmabufs: FakeDMABUFTable) {
        self.capability = capability
        self.dmabufs = dmabufs
    }

    deinit { for buffer in memory.values { buffer.deallocate() } }

    /// A freshly opened (e.g. replugged) node has no buffers or streams.
    func didOpen() {}

    func alive(_ name: String) throws(V4L2Error) {
        log.append(name)
        if unplugged { throw .deviceGone }
    }

    func storage(offset: UInt32, length: Int) -> UnsafeMutableRawBufferPointer {
        if let existing = memory[offset] { return existing }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 64)
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        memory[offset] = buffer
        return buffer
    }

    func queryCapability() throws(V4L2Error) -> V4L2Capability { try alive("QUERYCAP"); return capability }
    func enumerateFormat(type: V4L2BufferType, index: UInt32) throws(V4L2Error) -> V4L2FormatDescription? { try alive("ENUM_FMT"); return nil }
    func enumerateFrameSize(pixelFormat: V4L2PixelFormat, index: UInt32) throws(V4L2Error) -> V4L2FrameSize? { try alive("ENUM_FRAMESIZES"); return nil }
    func enumerateFrameInterval(pixelFormat: V4L2PixelFormat, width: UInt32, height: UInt32, index: UInt32) throws(V4L2Error) -> V4L2FrameInterval? { try alive("ENUM_FRAMEINTERVALS"); return nil }
    func getFormat(type: V4L2BufferType) throws(V4L2Error) -> V4L2Format { try alive("G_FMT"); throw .ioctl(request: "VIDIOC_G_FMT", errno: 25) }
    func setFormat(_ format: V4L2Format) throws(V4L2Error) -> V4L2Format { try alive("S_FMT"); throw .ioctl(request: "VIDIOC_S_FMT", errno: 25) }
    func getStreamParameters(type: V4L2BufferType) throws(V4L2Error) -> V4L2StreamParameters { try alive("G_PARM"); throw .ioctl(request: "VIDIOC_G_PARM", errno: 25) }
    func setStreamParameters(type: V4L2BufferType, timePerFrame: V4L2Fraction) throws(V4L2Error) -> V4L2StreamParameters { try alive("S_PARM"); throw .ioctl(request: "VIDIOC_S_PARM", errno: 25) }
    func requestBuffers(type: V4L2BufferType, memory: V4L2Memory, count: UInt32) throws(V4L2Error) -> UInt32 { try alive("REQBUFS"); throw .ioctl(request: "VIDIOC_REQBUFS", errno: 25) }
    func queryBuffer(type: V4L2BufferType, memory: V4L2Memory, index: UInt32, planeCount: Int) throws(V4L2Error) -> V4L2Buffer { try alive("QUERYBUF"); throw .ioctl(request: "VIDIOC_QUERYBUF", errno: 25) }
    func queueBuffer(_ buffer: V4L2Buffer) throws(V4L2Error) { try alive("QBUF"); throw .ioctl(request: "VIDIOC_QBUF", errno: 25) }
    func dequeueBuffer(type: V4L2BufferType, memory: V4L2Memory, planeCount: Int) throws(V4L2Error) -> V4L2Buffer? { try alive("DQBUF"); return nil }
    func exportBuffer(type: V4L2BufferType, index: UInt32, plane: UInt32) throws(V4L2Error) -> Int32 { try alive("EXPBUF"); throw .ioctl(request: "VIDIOC_EXPBUF", errno: 25) }
    func streamOn(type: V4L2BufferType) throws(V4L2Error) { try alive("STREAMON") }
    func streamOff(type: V4L2BufferType) throws(V4L2Error) { try alive("STREAMOFF") }
    func setControls(_ controls: [V4L2Control]) throws(V4L2Error) { try alive("S_EXT_CTRLS"); throw .ioctl(request: "VIDIOC_S_EXT_CTRLS", errno: 25) }
    func encoderCommand(_ command: V4L2EncoderCommand) throws(V4L2Error) { try alive("ENCODER_CMD"); throw .ioctl(request: "VIDIOC_ENCODER_CMD", errno: 25) }
    func subscribeEvent(_ type: V4L2EventType) throws(V4L2Error) { try alive("SUBSCRIBE_EVENT") }
    func dequeueEvent() throws(V4L2Error) -> V4L2EventType? { try alive("DQEVENT"); return nil }

    func mapBuffer(length: Int, offset: UInt32) throws(V4L2Error) -> UnsafeMutableRawBufferPointer {
        try alive("mmap")
        liveMappings += 1
        return storage(offset: offset, length: length)
    }
    func unmapBuffer(_ mapping: UnsafeMutableRawBufferPointer) { liveMappings -= 1 }
    func closeExportedBuffer(_ fd: Int32) { dmabufs.open.remove(fd) }
    func poll(events: V4L2PollEvents, timeoutMilliseconds: Int32) throws(V4L2Error) -> V4L2PollEvents { [] }
    func close() { isOpen = false; log.append("close") }
}

/// A camera: YUYV + NV12 at discrete sizes, MMAP buffers the test fills with `produce(...)`.
final class FakeCamera: FakeNode {
    var formats: [V4L2PixelFormat] = [.yuyv, .nv12]
    /// S_FMT answers with this format instead of the requested one (driver substitution).
    var substitute: [V4L2PixelFormat: V4L2PixelFormat] = [:]
    var current: V4L2Format?
    var bufferCount = 0
    var maxBuffers: UInt32 = 8
    var queued: [UInt32] = []
    var filled: [V4L2Buffer] = []
    var streaming = false
    var sequence: UInt32 = 0
    var exportFails = false
    var timestampFlags: V4L2BufferFlags = .timestampMonotonic
    var driverDrops = 0

    init(multiplanar: Bool = false, dmabufs: FakeDMABUFTable) {
        let caps: V4L2CapabilityFlags = [multiplanar ? .videoCaptureMultiplanar : .videoCapture, .streaming, .deviceCaps]
        super.init(capability: V4L2Capability(driver: "fakecam", card: "Fake Camera", busInfo: "usb-1", capabilities: caps, deviceCapabilities: caps.subtracting(.deviceCaps)), dmabufs: dmabufs)
    }

    var type: V4L2BufferType { capability.captureBufferType }

    override func didOpen() {
        queued = []
        filled = []
        streaming = false
        bufferCount = 0
    }
    var frameBytes: Int { Int(current?.planes.first?.sizeImage ?? 0) }

    override func enumerateFormat(type: V4L2BufferType, index: UInt32) throws(V4L2Error) -> V4L2FormatDescription? {
        try alive("ENUM_FMT")
        guard type == self.type, Int(index) < formats.count else { return nil }
        return V4L2FormatDescription(pixelFormat: formats[Int(index)], description: formats[Int(index)].description)
    }
    override func enumerateFrameSize(pixelFormat: V4L2PixelFormat, index: UInt32) throws(V4L2Error) -> V4L2FrameSize? {
        try alive("ENUM_FRAMESIZES")
        let sizes: [V4L2FrameSize] = [.discrete(width: 640, height: 480), .discrete(width: 1280, height: 720)]
        return Int(index) < sizes.count ? sizes[Int(index)] : nil
    }
    override func enumerateFrameInterval(pixelFormat: V4L2PixelFormat, width: UInt32, height: UInt32, index: UInt32) throws(V4L2Error) -> V4L2FrameInterval? {
        try alive("ENUM_FRAMEINTERVALS")
        let intervals: [V4L2FrameInterval] = width == 640 ? [.discrete(V4L2Fraction(1, 30)), .discrete(V4L2Fraction(1, 15))] : [.discrete(V4L2Fraction(1, 10))]
        return Int(index) < intervals.count ? intervals[Int(index)] : nil
    }
    override func setFormat(_ format: V4L2Format) throws(V4L2Error) -> V4L2Format {
        try alive("S_FMT \(format.pixelFormat)")
        guard format.type == type else { throw .ioctl(request: "VIDIOC_S_FMT", errno: 22) }
        var result = format
        result.pixelFormat = substitute[format.pixelFormat] ?? (formats.contains(format.pixelFormat) ? format.pixelFormat : formats[0])
        result.width = min(format.width, 1280)
        result.height = min(format.height, 720)
        let stride = result.pixelFormat == .yuyv ? result.width * 2 : result.width
        let size = result.pixelFormat == .yuyv ? stride * result.height : stride * result.height * 3 / 2
        result.planes = [V4L2PlaneFormat(bytesPerLine: stride, sizeImage: size)]
        current = result
        return result
    }
    override func setStreamParameters(type: V4L2BufferType, timePerFrame: V4L2Fraction) throws(V4L2Error) -> V4L2StreamParameters {
        try alive("S_PARM \(timePerFrame)")
        return V4L2StreamParameters(timePerFrame: timePerFrame, canSetTimePerFrame: true)
    }
    override func requestBuffers(type: V4L2BufferType, memory: V4L2Memory, count: UInt32) throws(V4L2Error) -> UInt32 {
        try alive("REQBUFS \(count)")
        guard memory == .mmap, type == self.type else { throw .ioctl(request: "VIDIOC_REQBUFS", errno: 22) }
        bufferCount = Int(min(count, maxBuffers))
        return UInt32(bufferCount)
    }
    override func queryBuffer(type: V4L2BufferType, memory: V4L2Memory, index: UInt32, planeCount: Int) throws(V4L2Error) -> V4L2Buffer {
        try alive("QUERYBUF")
        guard Int(index) < bufferCount else { throw .ioctl(request: "VIDIOC_QUERYBUF", errno: 22) }
        return V4L2Buffer(index: index, type: type, memory: .mmap,
                          planes: [V4L2BufferPlane(length: UInt32(frameBytes), memoryOffset: index * 0x10_0000)])
    }
    override func exportBuffer(type: V4L2BufferType, index: UInt32, plane: UInt32) throws(V4L2Error) -> Int32 {
        try alive("EXPBUF")
        if exportFails { throw .ioctl(request: "VIDIOC_EXPBUF", errno: 25) }
        let fd = dmabufs.nextFD
        dmabufs.nextFD += 1
        dmabufs.buffers[fd] = storage(offset: index * 0x10_0000, length: frameBytes)
        dmabufs.open.insert(fd)
        return fd
    }
    override func queueBuffer(_ buffer: V4L2Buffer) throws(V4L2Error) {
        try alive("QBUF \(buffer.index)")
        // A real driver refuses a buffer that is already queued or filled (EINVAL).
        guard Int(buffer.index) < bufferCount, !queued.contains(buffer.index), !filled.contains(where: { $0.index == buffer.index }) else {
            throw .ioctl(request: "VIDIOC_QBUF", errno: 22)
        }
        queued.append(buffer.index)
    }
    override func dequeueBuffer(type: V4L2BufferType, memory: V4L2Memory, planeCount: Int) throws(V4L2Error) -> V4L2Buffer? {
        try alive("DQBUF")
        return filled.isEmpty ? nil : filled.removeFirst()
    }
    override func streamOn(type: V4L2BufferType) throws(V4L2Error) { try alive("STREAMON"); streaming = true }
    override func streamOff(type: V4L2BufferType) throws(V4L2Error) {
        try alive("STREAMOFF")
        streaming = false
        queued = []
        filled = []
    }

    /// The sensor delivers `count` frames, 33 ms apart from `startMicroseconds`: each fills the
    /// oldest queued buffer with its sequence number; with nothing queued the frame is lost.
    func produce(_ count: Int, startMicroseconds: UInt64 = 1_000_000, error: Bool = false) {
        for i in 0..<count {
            defer { sequence += 1 }
            guard streaming, !queued.isEmpty else { driverDrops += 1; continue }
            let index = queued.removeFirst()
            let bytes = storage(offset: index * 0x10_0000, length: frameBytes)
            for j in 0..<bytes.count { bytes[j] = UInt8(truncatingIfNeeded: Int(sequence) &+ j) }
            var flags = timestampFlags
            if error { flags.insert(.error) }
            filled.append(V4L2Buffer(index: index, type: type, memory: .mmap, flags: flags,
                                     timestampMicroseconds: startMicroseconds + UInt64(i) * 33_333, sequence: sequence,
                                     planes: [V4L2BufferPlane(length: UInt32(frameBytes), bytesUsed: UInt32(frameBytes))]))
        }
    }
}

/// A stateful H.264 encoder like bcm2835-codec (multi-planar M2M): every queued raw buffer is
/// "encoded" at once into a free coded buffer: [SPS][PPS]IDR or a P slice, whose payload carries
/// the input's first 8 bytes and the bitrate in force, with the input timestamp copied.
final class FakeEncoder: FakeNode {
    var codedFormat: V4L2Format?
    var rawFormat: V4L2Format?
    var controls: [V4L2ControlID: Int32] = [:]
    var rejectedControl: V4L2ControlID?
    /// Controls this driver does not have (S_EXT_CTRLS fails with EINVAL, as for vicodec's H.264 ones).
    var missingControls: Set<V4L2ControlID> = []
    /// Coded formats of the CAPTURE queue; S_FMT substitutes the first for any other.
    var codedPixelFormats: [V4L2PixelFormat] = [.h264]
    var supportsDMABUF = true
    /// Bytes the encoder needs per input (bcm2835 pads the height to 16 lines, so imports can be too small).
    var requiredInputBytes: Int?
    var inputMemory: V4L2Memory = .mmap
    var inputCount = 0
    var codedCount = 0
    var pendingInputs: [V4L2Buffer] = []
    var doneInputs: [V4L2Buffer] = []
    var freeCoded: [UInt32] = []
    var readyCoded: [V4L2Buffer] = []
    var outputOn = false
    var captureOn = false
    var framesEncoded = 0
    var forceKey = false
    var stopRequested = false
    var holdInputs = false
    var events: [V4L2EventType] = []

    init(dmabufs: FakeDMABUFTable) {
        let caps: V4L2CapabilityFlags = [.videoM2MMultiplanar, .streaming, .deviceCaps]
        super.init(capability: V4L2Capability(driver: "bcm2835-codec", card: "bcm2835-codec-encode", busInfo: "platform:bcm2835-codec",
                                              capabilities: caps, deviceCapabilities: caps.subtracting(.deviceCaps)), dmabufs: dmabufs)
    }

    override func setFormat(_ format: V4L2Format) throws(V4L2Error) -> V4L2Format {
        try alive("S_FMT \(format.type) \(format.pixelFormat)")
        var result = format
        if format.type == .videoCaptureMultiplanar {
            result.pixelFormat = codedPixelFormats.contains(format.pixelFormat) ? format.pixelFormat : codedPixelFormats[0]
            result.planes = [V4L2PlaneFormat(bytesPerLine: 0, sizeImage: 512 * 1024)]
            codedFormat = result
        } else if format.type == .videoOutputMultiplanar {
            guard codedFormat != nil else { throw .ioctl(request: "VIDIOC_S_FMT", errno: 16) }  // coded first
            let stride = max(format.planes.first?.bytesPerLine ?? 0, (format.width + 31) / 32 * 32)
            result.planes = [V4L2PlaneFormat(bytesPerLine: stride, sizeImage: stride * format.height * 3 / 2)]
            rawFormat = result
        } else {
            throw .ioctl(request: "VIDIOC_S_FMT", errno: 22)
        }
        return result
    }
    override func setStreamParameters(type: V4L2BufferType, timePerFrame: V4L2Fraction) throws(V4L2Error) -> V4L2StreamParameters {
        try alive("S_PARM \(timePerFrame)")
        return V4L2StreamParameters(timePerFrame: timePerFrame, canSetTimePerFrame: true)
    }
    override func setControls(_ list: [V4L2Control]) throws(V4L2Error) {
        try alive("S_EXT_CTRLS " + list.map { "\($0.id)=\($0.value)" }.joined(separator: ","))
        for control in list {
            if control.id == rejectedControl || missingControls.contains(control.id) {
                throw .ioctl(request: "VIDIOC_S_EXT_CTRLS", errno: 22)
            }
            if control.id == .forceKeyFrame { forceKey = true } else { controls[control.id] = control.value }
        }
    }
    override func requestBuffers(type: V4L2BufferType, memory: V4L2Memory, count: UInt32) throws(V4L2Error) -> UInt32 {
        try alive("REQBUFS \(type) \(memory) \(count)")
        if type == .videoOutputMultiplanar {
            if memory == .dmabuf && !supportsDMABUF { throw .ioctl(request: "VIDIOC_REQBUFS", errno: 22) }
            guard !outputOn || count == 0 else { throw .ioctl(request: "VIDIOC_REQBUFS", errno: 16) }
            inputMemory = memory
            inputCount = Int(count)
        } else {
            codedCount = Int(count)
            freeCoded = []
        }
        return count
    }
    override func queryBuffer(type: V4L2BufferType, memory: V4L2Memory, index: UInt32, planeCount: Int) throws(V4L2Error) -> V4L2Buffer {
        try alive("QUERYBUF")
        let isInput = type == .videoOutputMultiplanar
        let length = isInput ? Int(rawFormat?.planes[0].sizeImage ?? 0) : 512 * 1024
        return V4L2Buffer(index: index, type: type, memory: .mmap,
                          planes: [V4L2BufferPlane(length: UInt32(length), memoryOffset: (isInput ? 0x4000_0000 : 0) + index * 0x10_0000)])
    }
    override func queueBuffer(_ buffer: V4L2Buffer) throws(V4L2Error) {
        try alive("QBUF \(buffer.type) \(buffer.index)")
        if buffer.type == .videoCaptureMultiplanar {
            guard Int(buffer.index) < codedCount, !freeCoded.contains(buffer.index) else { throw .ioctl(request: "VIDIOC_QBUF", errno: 22) }
            freeCoded.append(buffer.index)
        } else {
            guard buffer.memory == inputMemory, Int(buffer.index) < inputCount,
                  !pendingInputs.contains(where: { $0.index == buffer.index }) else { throw .ioctl(request: "VIDIOC_QBUF", errno: 22) }
            if buffer.memory == .dmabuf {
                let fd = buffer.planes[0].dmabufFD
                guard dmabufs.open.contains(fd), let bytes = dmabufs.buffers[fd] else { throw .ioctl(request: "VIDIOC_QBUF", errno: 9) }
                if let required = requiredInputBytes, bytes.count < required { throw .ioctl(request: "VIDIOC_QBUF", errno: 22) }
            }
            pendingInputs.append(buffer)
        }
        pump()
    }
    override func dequeueBuffer(type: V4L2BufferType, memory: V4L2Memory, planeCount: Int) throws(V4L2Error) -> V4L2Buffer? {
        try alive("DQBUF \(type)")
        if type == .videoCaptureMultiplanar { return readyCoded.isEmpty ? nil : readyCoded.removeFirst() }
        return doneInputs.isEmpty ? nil : doneInputs.removeFirst()
    }
    override func streamOn(type: V4L2BufferType) throws(V4L2Error) {
        try alive("STREAMON \(type)")
        if type == .videoOutputMultiplanar { outputOn = true } else { captureOn = true }
        pump()
    }
    override func streamOff(type: V4L2BufferType) throws(V4L2Error) {
        try alive("STREAMOFF \(type)")
        if type == .videoOutputMultiplanar {
            outputOn = false
            pendingInputs = []
            doneInputs = []
        } else {
            captureOn = false
            freeCoded = []
            readyCoded = []
        }
    }
    override func encoderCommand(_ command: V4L2EncoderCommand) throws(V4L2Error) {
        try alive("ENCODER_CMD \(command)")
        if command == .stop { stopRequested = true }
        pump()
    }
    override func dequeueEvent() throws(V4L2Error) -> V4L2EventType? {
        try alive("DQEVENT")
        return events.isEmpty ? nil : events.removeFirst()
    }

    func inputBytes(_ buffer: V4L2Buffer) -> [UInt8] {
        let source: UnsafeMutableRawBufferPointer?
        if buffer.memory == .dmabuf {
            source = dmabufs.buffers[buffer.planes[0].dmabufFD]
        } else {
            source = memory[0x4000_0000 + buffer.index * 0x10_0000]
        }
        guard let source else { return [] }
        return Array(source.prefix(min(Int(buffer.planes[0].bytesUsed), source.count)))
    }

    func pump() {
        guard outputOn, captureOn, !holdInputs else { return }
        while !pendingInputs.isEmpty, !freeCoded.isEmpty {
            let input = pendingInputs.removeFirst()
            let codedIndex = freeCoded.removeFirst()
            let period = Int(controls[.h264IFramePeriod] ?? 60)
            let key = framesEncoded == 0 || forceKey || (period > 0 && framesEncoded % period == 0)
            forceKey = false
            var au: [UInt8] = []
            if key { au += [0, 0, 0, 1, 0x67, 0x42, 0xE0, 0x1F, 0, 0, 0, 1, 0x68, 0xCE, 0x38, 0x80] }
            au += [0, 0, 0, 1, key ? 0x65 : 0x41]
            au += Array(inputBytes(input).prefix(8))
            let bitrate = UInt32(bitPattern: controls[.videoBitrate] ?? 0)
            au += [UInt8(bitrate >> 24), UInt8(truncatingIfNeeded: bitrate >> 16), UInt8(truncatingIfNeeded: bitrate >> 8), UInt8(truncatingIfNeeded: bitrate)]
            let bytes = storage(offset: codedIndex * 0x10_0000, length: 512 * 1024)
            for (i, byte) in au.enumerated() { bytes[i] = byte }
            readyCoded.append(V4L2Buffer(index: codedIndex, type: .videoCaptureMultiplanar, memory: .mmap,
                                         flags: key ? [.keyFrame, .timestampCopy] : [.pFrame, .timestampCopy],
                                         timestampMicroseconds: input.timestampMicroseconds, sequence: UInt32(framesEncoded),
                                         planes: [V4L2BufferPlane(length: 512 * 1024, bytesUsed: UInt32(au.count))]))
            framesEncoded += 1
            doneInputs.append(input)
        }
        if stopRequested, pendingInputs.isEmpty, !freeCoded.isEmpty {
            stopRequested = false
            let codedIndex = freeCoded.removeFirst()
            readyCoded.append(V4L2Buffer(index: codedIndex, type: .videoCaptureMultiplanar, memory: .mmap, flags: [.last],
                                         planes: [V4L2BufferPlane(length: 512 * 1024, bytesUsed: 0)]))
            events.append(.endOfStream)
        }
    }
}
