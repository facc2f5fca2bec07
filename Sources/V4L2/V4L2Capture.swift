import RTCBase

public struct V4L2CaptureConfiguration: Equatable, Sendable {
    public var path: String
    public var request: V4L2FormatRequest
    /// MMAP buffers to ask for (the driver may grant more or fewer; fewer than 2 is an error).
    public var bufferCount: Int
    /// VIDIOC_EXPBUF every buffer so an encoder can import it as DMABUF (zero copy).
    public var exportDMABUF: Bool

    public init(path: String, request: V4L2FormatRequest, bufferCount: Int = 4, exportDMABUF: Bool = true) {
        self.path = path; self.request = request; self.bufferCount = bufferCount; self.exportDMABUF = exportDMABUF
    }
}

/// Where a frame's `captureTime` came from.
public enum V4L2TimestampSource: Equatable, Sendable {
    /// The driver's V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC timestamp (CLOCK_MONOTONIC, like ALSA's).
    case driverMonotonic
    /// The driver gave none we trust: the `now` passed to `readFreshestFrame` (dequeue time).
    case dequeueTime
}

/// One captured frame, lent to the consumer until it is handed back with `V4L2Capture.release(_:)`.
/// The memory views stay valid until then, even if the device disappears in between.
public struct V4L2Frame: @unchecked Sendable {
    public let bufferIndex: Int
    /// Each plane's bytes (from its data offset, `bytesused` long) in the mmap'd buffer.
    public let planes: [UnsafeRawBufferPointer]
    /// Each plane's full buffer length (what a DMABUF importer must be told).
    public let planeLengths: [Int]
    /// DMABUF fds of the planes (VIDIOC_EXPBUF), owned by the capture; empty when not exported.
    public let dmabufFDs: [Int32]
    public let format: V4L2Format
    public let captureTime: MonotonicTime
    public let timestampSource: V4L2TimestampSource
    /// The driver's frame counter: gaps mean the driver dropped frames before we saw them.
    public let sequence: UInt32
    /// Which streaming session (start/reopen) produced the frame.
    let generation: Int

    /// The first (often the only) plane.
    public var data: UnsafeRawBufferPointer { planes.first ?? UnsafeRawBufferPointer(start: nil, count: 0) }
    public var bytesUsed: Int { planes.reduce(0) { $0 + $1.count } }
}

public struct V4L2CaptureStatistics: Equatable, Sendable {
    public var framesDelivered = 0
    /// Frames dequeued but replaced by a newer one in the same read ("freshest frame wins").
    public var framesSkippedStale = 0
    /// Frames requeued unseen because the consumer still held every frame it may hold.
    public var framesDroppedConsumerBusy = 0
    /// Buffers the driver marked V4L2_BUF_FLAG_ERROR (or returned empty).
    public var corruptedFrames = 0
    /// Frames the driver dropped before we dequeued them (gaps in `sequence`).
    public var driverSequenceGaps = 0
    public var deviceLosses = 0
    public var reopens = 0
    /// STREAMOFF/STREAMON cycles asked for by `restartStreaming()`.
    public var streamRestarts = 0
    /// EXPBUF failed, so frames carry no DMABUF fds (an encoder then copies).
    public var dmabufExportFailed = false
    public init() {}
}

public enum V4L2CaptureState: Equatable, Sendable {
    case idle, streaming, deviceGone, stopped
}

/// A V4L2 camera streaming MMAP buffers (optionally exported as DMABUF), read "freshest frame wins":
/// the daemon's loop polls `fileDescriptor` and calls `readFreshestFrame(now:)` when it is readable.
public final class V4L2Capture {
    public let configuration: V4L2CaptureConfiguration
    public private(set) var state: V4L2CaptureState = .idle
    public private(set) var statistics = V4L2CaptureStatistics()
    public private(set) var capability: V4L2Capability?
    public private(set) var negotiated: V4L2NegotiatedFormat?
    /// How many frames the consumer may hold at once; beyond that new frames are requeued (dropped)
    /// so the driver always keeps at least two buffers to fill.
    public private(set) var maximumHeldFrames = 1

    private let opener: any V4L2DeviceOpener
    private var device: (any V4L2DeviceIO)?
    private var bufferType: V4L2BufferType = .videoCapture
    private var planeCount = 1
    private var buffers: [CaptureBuffer] = []
    /// Buffers of a finished session still held by the consumer: unmapped when released.
    private var retired: [RetiredKey: RetiredBuffer] = [:]
    private var generation = 0
    private var lastSequence: UInt32?

    private struct CaptureBuffer {
        var index: UInt32
        var mappings: [UnsafeMutableRawBufferPointer]
        var dmabufFDs: [Int32]
        var heldByConsumer = false
    }

    /// A held buffer of an ended session, with the device object its munmap/close go through.
    private struct RetiredBuffer {
        var buffer: CaptureBuffer
        var device: any V4L2DeviceIO
    }

    private struct RetiredKey: Hashable {
        var generation: Int
        var index: Int
    }

    public init(configuration: V4L2CaptureConfiguration, opener: some V4L2DeviceOpener = KernelV4L2Opener()) {
        self.configuration = configuration
        self.opener = opener
    }

    deinit {
        releaseSession(streamOff: true)
        for entry in retired.values { unmap(entry.buffer, using: entry.device) }
    }

    /// The fd for the daemon's poll loop while streaming (POLLIN: a frame is ready; POLLERR: device trouble).
    public var fileDescriptor: Int32? { state == .streaming ? device?.fileDescriptor : nil }

    public var heldFrameCount: Int { buffers.filter(\.heldByConsumer).count + retired.count }

    // MARK: lifecycle

    /// Opens the device, negotiates format and rate, maps (and exports) the buffers, queues them
    /// all and starts streaming.
    public func start() throws(V4L2Error) {
        guard state != .streaming else { throw .invalidState("start while streaming") }
        generation += 1
        lastSequence = nil
        do {
            try openAndStream()
            state = .streaming
        } catch {
            releaseSession(streamOff: error != .deviceGone)
            if error == .deviceGone {
                state = .deviceGone
                statistics.deviceLosses += 1
            } else {
                state = .stopped
            }
            throw error
        }
    }

    /// Stops streaming and releases everything not held by the consumer (held frames are unmapped
    /// when released).
    public func stop() {
        guard state == .streaming else { return }
        releaseSession(streamOff: true)
        state = .stopped
    }

    /// After `.deviceGone` (or `stop`), opens the device again with the same configuration.
    public func reopen() throws(V4L2Error) {
        stop()
        statistics.reopens += 1
        try start()
    }

    private func openAndStream() throws(V4L2Error) {
        let device = try opener.open(path: configuration.path)
        self.device = device
        let capability = try device.queryCapability()
        self.capability = capability
        guard capability.kind == .videoCapture else {
            throw .unsupportedDevice(path: configuration.path, reason: "not a video capture device (\(capability.kind.rawValue))")
        }
        guard capability.supportsStreaming else {
            throw .unsupportedDevice(path: configuration.path, reason: "no streaming I/O")
        }
        bufferType = capability.captureBufferType
        let negotiated = try V4L2Negotiation.negotiate(device, type: bufferType, request: configuration.request)
        self.negotiated = negotiated
        planeCount = bufferType.isMultiplanar ? max(1, negotiated.format.planes.count) : 1

        let requested = max(2, configuration.bufferCount)
        let granted = Int(try device.requestBuffers(type: bufferType, memory: .mmap, count: UInt32(requested)))
        guard granted >= 2 else { throw .tooFewBuffers(requested: requested, granted: granted) }
        maximumHeldFrames = max(1, granted - 2)

        var exportWorks = configuration.exportDMABUF
        for index in 0..<UInt32(granted) {
            let info = try device.queryBuffer(type: bufferType, memory: .mmap, index: index, planeCount: planeCount)
            var buffer = CaptureBuffer(index: index, mappings: [], dmabufFDs: [])
            buffers.append(buffer)  // recorded before mapping so a failure unmaps what was mapped
            for plane in info.planes.prefix(planeCount) {
                buffer.mappings.append(try device.mapBuffer(length: Int(plane.length), offset: plane.memoryOffset))
                buffers[buffers.count - 1] = buffer
            }
            if exportWorks {
                for plane in 0..<UInt32(buffer.mappings.count) {
                    do {
                        buffer.dmabufFDs.append(try device.exportBuffer(type: bufferType, index: index, plane: plane))
                    } catch {
                        if error == .deviceGone { throw error }
                        exportWorks = false  // e.g. vmalloc-backed drivers without EXPBUF: frames are copied
                        statistics.dmabufExportFailed = true
                        break
                    }
                }
                buffers[buffers.count - 1] = buffer
            }
        }
        if !exportWorks {
            for i in buffers.indices {
                for fd in buffers[i].dmabufFDs { device.closeExportedBuffer(fd) }
                buffers[i].dmabufFDs = []
            }
        }
        for buffer in buffers { try queue(buffer.index) }
        try device.streamOn(type: bufferType)
    }

    /// Sets controls on the streaming device (a camera that encodes H.264 itself: FORCE_KEY_FRAME,
    /// VIDEO_BITRATE). Throws the driver's refusal (EINVAL, ENOTTY) for the caller to fall back.
    public func setControls(_ controls: [V4L2Control]) throws(V4L2Error) {
        guard state == .streaming, let device else {
            if state == .deviceGone { throw .deviceGone }
            throw .invalidState("setControls while not streaming")
        }
        do { try device.setControls(controls) } catch {
            if error == .deviceGone { deviceLost() }
            throw error
        }
    }

    /// STREAMOFF then STREAMON on the open device, keeping its format and buffers: a camera that
    /// encodes H.264 itself begins again with an IDR, the one way to get a key frame from cameras
    /// without FORCE_KEY_FRAME (most UVC ones). Frames the consumer holds stay valid and are queued
    /// again when released. Cheaper and safer than `reopen()`: the device is never closed.
    public func restartStreaming() throws(V4L2Error) {
        guard state == .streaming, let device else {
            if state == .deviceGone { throw .deviceGone }
            throw .invalidState("restartStreaming while not streaming")
        }
        do throws(V4L2Error) {
            try device.streamOff(type: bufferType)  // every buffer comes back to us (dequeued)
            for buffer in buffers where !buffer.heldByConsumer { try queue(buffer.index) }
            try device.streamOn(type: bufferType)
            lastSequence = nil
            statistics.streamRestarts += 1
        } catch {
            if error == .deviceGone { deviceLost() }
            throw error
        }
    }

    // MARK: frames

    /// Dequeues every buffer that is ready, keeps the newest for the consumer and requeues the
    /// others at once. nil when nothing new was ready (or the consumer holds all it may).
    /// `now` stamps frames whose driver timestamp is not monotonic.
    public func readFreshestFrame(now: MonotonicTime) throws(V4L2Error) -> V4L2Frame? {
        switch state {
        case .streaming: break
        case .deviceGone: throw .deviceGone
        case .idle, .stopped: throw .invalidState("readFreshestFrame while not streaming")
        }
        guard let device else { throw .invalidState("no device") }
        do throws(V4L2Error) {
            var newest: V4L2Buffer?
            while let buffer = try device.dequeueBuffer(type: bufferType, memory: .mmap, planeCount: planeCount) {
                noteSequence(buffer.sequence)
                if buffer.flags.contains(.error) || buffer.totalBytesUsed == 0 {
                    statistics.corruptedFrames += 1
                    try queue(buffer.index)
                    continue
                }
                if let older = newest {
                    statistics.framesSkippedStale += 1
                    try queue(older.index)
                }
                newest = buffer
            }
            guard let chosen = newest else { return nil }
            if buffers.filter(\.heldByConsumer).count >= maximumHeldFrames {
                statistics.framesDroppedConsumerBusy += 1
                try queue(chosen.index)
                return nil
            }
            guard let slot = buffers.firstIndex(where: { $0.index == chosen.index }) else {
                throw V4L2Error.invalidState("driver returned unknown buffer index \(chosen.index)")
            }
            buffers[slot].heldByConsumer = true
            statistics.framesDelivered += 1
            return makeFrame(chosen, from: buffers[slot], now: now)
        } catch {
            if error == .deviceGone { deviceLost() }
            throw error
        }
    }

    /// Hands a frame back: it is queued to the driver again (or unmapped if its session ended).
    public func release(_ frame: V4L2Frame) throws(V4L2Error) {
        if frame.generation != generation || state != .streaming {
            let key = RetiredKey(generation: frame.generation, index: frame.bufferIndex)
            guard let entry = retired.removeValue(forKey: key) else { throw .unknownFrame(index: frame.bufferIndex) }
            unmap(entry.buffer, using: entry.device)
            return
        }
        guard let slot = buffers.firstIndex(where: { Int($0.index) == frame.bufferIndex }), buffers[slot].heldByConsumer else {
            throw .unknownFrame(index: frame.bufferIndex)
        }
        buffers[slot].heldByConsumer = false
        do {
            try queue(buffers[slot].index)
        } catch {
            if error == .deviceGone { deviceLost() }
            throw error
        }
    }

    private func queue(_ index: UInt32) throws(V4L2Error) {
        guard let device else { throw .invalidState("no device") }
        let planes = Array(repeating: V4L2BufferPlane(), count: planeCount)
        try device.queueBuffer(V4L2Buffer(index: index, type: bufferType, memory: .mmap, planes: planes))
    }

    private func noteSequence(_ sequence: UInt32) {
        if let last = lastSequence, sequence != last &+ 1, sequence > last {
            statistics.driverSequenceGaps += Int(sequence - last - 1)
        }
        lastSequence = sequence
    }

    private func makeFrame(_ buffer: V4L2Buffer, from mapped: CaptureBuffer, now: MonotonicTime) -> V4L2Frame {
        var views: [UnsafeRawBufferPointer] = []
        var lengths: [Int] = []
        for (i, mapping) in mapped.mappings.enumerated() {
            let plane = i < buffer.planes.count ? buffer.planes[i] : V4L2BufferPlane()
            // Multi-planar bytesused counts from the start of the plane, data_offset included;
            // clamp everything to the mapping so a confused driver cannot make us read out of bounds.
            let end = min(Int(plane.bytesUsed), mapping.count)
            let start = min(Int(plane.dataOffset), end)
            views.append(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(mapping)[start..<end]))
            lengths.append(mapping.count)
        }
        let monotonic = buffer.flags.timestampType == .timestampMonotonic && buffer.timestampMicroseconds > 0
        return V4L2Frame(bufferIndex: Int(buffer.index), planes: views, planeLengths: lengths, dmabufFDs: mapped.dmabufFDs,
                         format: negotiated?.format ?? V4L2Format(type: bufferType, width: 0, height: 0, pixelFormat: V4L2PixelFormat(rawValue: 0)),
                         captureTime: monotonic ? MonotonicTime(nanoseconds: buffer.timestampMicroseconds * 1000) : now,
                         timestampSource: monotonic ? .driverMonotonic : .dequeueTime,
                         sequence: buffer.sequence, generation: generation)
    }

    // MARK: teardown

    private func deviceLost() {
        statistics.deviceLosses += 1
        releaseSession(streamOff: false)
        state = .deviceGone
    }

    /// Stops the stream (if asked), unmaps and closes what the consumer does not hold, parks what it
    /// holds in `retired`, and closes the device.
    private func releaseSession(streamOff: Bool) {
        guard let device else { return }
        if streamOff, state == .streaming { try? device.streamOff(type: bufferType) }
        var anyHeld = false
        for buffer in buffers {
            if buffer.heldByConsumer {
                anyHeld = true
                retired[RetiredKey(generation: generation, index: Int(buffer.index))] = RetiredBuffer(buffer: buffer, device: device)
            } else {
                unmap(buffer, using: device)
            }
        }
        buffers = []
        if streamOff, !anyHeld { _ = try? device.requestBuffers(type: bufferType, memory: .mmap, count: 0) }
        device.close()
        self.device = nil
    }

    private func unmap(_ buffer: CaptureBuffer, using device: any V4L2DeviceIO) {
        for mapping in buffer.mappings { device.unmapBuffer(mapping) }
        for fd in buffer.dmabufFDs { device.closeExportedBuffer(fd) }
    }
}
