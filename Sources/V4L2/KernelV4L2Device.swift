internal import CV4L2
import Glibc

/// Opens real device nodes (O_RDWR | O_NONBLOCK | O_CLOEXEC).
public struct KernelV4L2Opener: V4L2DeviceOpener {
    public init() {}

    public func open(path: String) throws(V4L2Error) -> any V4L2DeviceIO {
        while true {
            let fd = Glibc.open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC)
            if fd >= 0 { return KernelV4L2Device(fileDescriptor: fd) }
            let code = errno
            if code == EINTR { continue }
            if V4L2Error.isDeviceGone(code) { throw .deviceGone }
            throw .open(path: path, errno: code)
        }
    }
}

/// The kernel side of the seam: every call marshals Swift values into the videodev2.h structs and
/// goes through `ioctl(_:_:_:)`, the one helper that retries EINTR and throws a typed errno.
public final class KernelV4L2Device: V4L2DeviceIO {
    public let fileDescriptor: Int32
    private var isClosed = false

    /// Takes ownership of an open device fd.
    public init(fileDescriptor: Int32) { self.fileDescriptor = fileDescriptor }

    deinit { if !isClosed { _ = Glibc.close(fileDescriptor) } }

    // MARK: the one ioctl helper

    private func ioctl<Argument>(_ request: UInt, _ name: String, _ argument: inout Argument) throws(V4L2Error) {
        try v4l2Ioctl(fileDescriptor, request, name, &argument)
    }

    /// The same, for calls where one errno means "no more entries" / "nothing ready": returns false then.
    private func ioctl<Argument>(_ request: UInt, _ name: String, _ argument: inout Argument, absentOn absent: Int32) throws(V4L2Error) -> Bool {
        do {
            try ioctl(request, name, &argument)
            return true
        } catch {
            if case let .ioctl(_, code) = error, code == absent { return false }
            throw error
        }
    }

    // MARK: V4L2DeviceIO

    public func queryCapability() throws(V4L2Error) -> V4L2Capability {
        var cap = v4l2_capability()
        try ioctl(cv4l2_VIDIOC_QUERYCAP, "VIDIOC_QUERYCAP", &cap)
        return V4L2Capability(driver: Self.string(fromCArray: cap.driver), card: Self.string(fromCArray: cap.card),
                              busInfo: Self.string(fromCArray: cap.bus_info), version: cap.version,
                              capabilities: V4L2CapabilityFlags(rawValue: cap.capabilities),
                              deviceCapabilities: V4L2CapabilityFlags(rawValue: cap.device_caps))
    }

    public func enumerateFormat(type: V4L2BufferType, index: UInt32) throws(V4L2Error) -> V4L2FormatDescription? {
        var desc = v4l2_fmtdesc()
        desc.index = index
        desc.type = type.rawValue
        guard try ioctl(cv4l2_VIDIOC_ENUM_FMT, "VIDIOC_ENUM_FMT", &desc, absentOn: EINVAL) else { return nil }
        return V4L2FormatDescription(pixelFormat: V4L2PixelFormat(rawValue: desc.pixelformat),
                                     description: Self.string(fromCArray: desc.description),
                                     isCompressed: desc.flags & cv4l2_V4L2_FMT_FLAG_COMPRESSED != 0,
                                     isEmulated: desc.flags & cv4l2_V4L2_FMT_FLAG_EMULATED != 0)
    }

    public func enumerateFrameSize(pixelFormat: V4L2PixelFormat, index: UInt32) throws(V4L2Error) -> V4L2FrameSize? {
        var size = v4l2_frmsizeenum()
        size.index = index
        size.pixel_format = pixelFormat.rawValue
        // EINVAL past the end; ENOTTY when the driver has no ENUM_FRAMESIZES at all.
        do {
            guard try ioctl(cv4l2_VIDIOC_ENUM_FRAMESIZES, "VIDIOC_ENUM_FRAMESIZES", &size, absentOn: EINVAL) else { return nil }
        } catch {
            if case let .ioctl(_, code) = error, code == ENOTTY { return nil }
            throw error
        }
        switch size.type {
        case cv4l2_V4L2_FRMSIZE_TYPE_DISCRETE:
            return .discrete(width: size.discrete.width, height: size.discrete.height)
        case cv4l2_V4L2_FRMSIZE_TYPE_CONTINUOUS:
            return .continuous(minWidth: size.stepwise.min_width, maxWidth: size.stepwise.max_width,
                               minHeight: size.stepwise.min_height, maxHeight: size.stepwise.max_height)
        default:
            let s = size.stepwise
            return .stepwise(minWidth: s.min_width, maxWidth: s.max_width, stepWidth: s.step_width,
                             minHeight: s.min_height, maxHeight: s.max_height, stepHeight: s.step_height)
        }
    }

    public func enumerateFrameInterval(pixelFormat: V4L2PixelFormat, width: UInt32, height: UInt32, index: UInt32) throws(V4L2Error) -> V4L2FrameInterval? {
        var interval = v4l2_frmivalenum()
        interval.index = index
        interval.pixel_format = pixelFormat.rawValue
        interval.width = width
        interval.height = height
        do {
            guard try ioctl(cv4l2_VIDIOC_ENUM_FRAMEINTERVALS, "VIDIOC_ENUM_FRAMEINTERVALS", &interval, absentOn: EINVAL) else { return nil }
        } catch {
            if case let .ioctl(_, code) = error, code == ENOTTY { return nil }
            throw error
        }
        func fraction(_ f: v4l2_fract) -> V4L2Fraction { V4L2Fraction(f.numerator, f.denominator) }
        switch interval.type {
        case cv4l2_V4L2_FRMIVAL_TYPE_DISCRETE:
            return .discrete(fraction(interval.discrete))
        case cv4l2_V4L2_FRMIVAL_TYPE_CONTINUOUS:
            return .continuous(min: fraction(interval.stepwise.min), max: fraction(interval.stepwise.max))
        default:
            return .stepwise(min: fraction(interval.stepwise.min), max: fraction(interval.stepwise.max),
                             step: fraction(interval.stepwise.step))
        }
    }

    public func getFormat(type: V4L2BufferType) throws(V4L2Error) -> V4L2Format {
        var format = v4l2_format()
        format.type = type.rawValue
        try ioctl(cv4l2_VIDIOC_G_FMT, "VIDIOC_G_FMT", &format)
        return Self.unpack(format)
    }

    public func setFormat(_ requested: V4L2Format) throws(V4L2Error) -> V4L2Format {
        var format = Self.pack(requested)
        try ioctl(cv4l2_VIDIOC_S_FMT, "VIDIOC_S_FMT", &format)
        return Self.unpack(format)
    }

    public func getStreamParameters(type: V4L2BufferType) throws(V4L2Error) -> V4L2StreamParameters {
        var parm = v4l2_streamparm()
        parm.type = type.rawValue
        try ioctl(cv4l2_VIDIOC_G_PARM, "VIDIOC_G_PARM", &parm)
        return Self.unpack(parm)
    }

    public func setStreamParameters(type: V4L2BufferType, timePerFrame: V4L2Fraction) throws(V4L2Error) -> V4L2StreamParameters {
        var parm = v4l2_streamparm()
        parm.type = type.rawValue
        let fract = v4l2_fract(numerator: timePerFrame.numerator, denominator: timePerFrame.denominator)
        if type.isOutput { parm.parm.output.timeperframe = fract } else { parm.parm.capture.timeperframe = fract }
        try ioctl(cv4l2_VIDIOC_S_PARM, "VIDIOC_S_PARM", &parm)
        return Self.unpack(parm)
    }

    public func requestBuffers(type: V4L2BufferType, memory: V4L2Memory, count: UInt32) throws(V4L2Error) -> UInt32 {
        var request = v4l2_requestbuffers()
        request.count = count
        request.type = type.rawValue
        request.memory = memory.rawValue
        try ioctl(cv4l2_VIDIOC_REQBUFS, "VIDIOC_REQBUFS", &request)
        return request.count
    }

    public func queryBuffer(type: V4L2BufferType, memory: V4L2Memory, index: UInt32, planeCount: Int) throws(V4L2Error) -> V4L2Buffer {
        let template = V4L2Buffer(index: index, type: type, memory: memory,
                                  planes: Array(repeating: V4L2BufferPlane(), count: max(1, planeCount)))
        return try withMarshalled(template) { (buffer: inout v4l2_buffer) throws(V4L2Error) in
            try ioctl(cv4l2_VIDIOC_QUERYBUF, "VIDIOC_QUERYBUF", &buffer)
            return true
        }!
    }

    public func queueBuffer(_ buffer: V4L2Buffer) throws(V4L2Error) {
        _ = try withMarshalled(buffer) { (raw: inout v4l2_buffer) throws(V4L2Error) in
            try ioctl(cv4l2_VIDIOC_QBUF, "VIDIOC_QBUF", &raw)
            return true
        }
    }

    public func dequeueBuffer(type: V4L2BufferType, memory: V4L2Memory, planeCount: Int) throws(V4L2Error) -> V4L2Buffer? {
        let template = V4L2Buffer(index: 0, type: type, memory: memory,
                                  planes: Array(repeating: V4L2BufferPlane(), count: max(1, planeCount)))
        return try withMarshalled(template) { (raw: inout v4l2_buffer) throws(V4L2Error) in
            try ioctl(cv4l2_VIDIOC_DQBUF, "VIDIOC_DQBUF", &raw, absentOn: EAGAIN)
        }
    }

    public func exportBuffer(type: V4L2BufferType, index: UInt32, plane: UInt32) throws(V4L2Error) -> Int32 {
        var export = v4l2_exportbuffer()
        export.type = type.rawValue
        export.index = index
        export.plane = plane
        export.flags = UInt32(O_CLOEXEC | O_RDONLY)
        try ioctl(cv4l2_VIDIOC_EXPBUF, "VIDIOC_EXPBUF", &export)
        return export.fd
    }

    public func streamOn(type: V4L2BufferType) throws(V4L2Error) {
        var raw = Int32(bitPattern: type.rawValue)
        try ioctl(cv4l2_VIDIOC_STREAMON, "VIDIOC_STREAMON", &raw)
    }

    public func streamOff(type: V4L2BufferType) throws(V4L2Error) {
        var raw = Int32(bitPattern: type.rawValue)
        try ioctl(cv4l2_VIDIOC_STREAMOFF, "VIDIOC_STREAMOFF", &raw)
    }

    public func setControls(_ controls: [V4L2Control]) throws(V4L2Error) {
        guard !controls.isEmpty else { return }
        let elementSize = Int(cv4l2_ext_control_size())
        let storage = UnsafeMutableRawPointer.allocate(byteCount: elementSize * controls.count, alignment: 8)
        defer { storage.deallocate() }
        for (i, control) in controls.enumerated() {
            cv4l2_ext_control_set(storage, UInt32(i), control.id.rawValue, control.value)
        }
        var request = v4l2_ext_controls()
        request.which = cv4l2_V4L2_CTRL_CLASS_CODEC
        request.count = UInt32(controls.count)
        request.controls = storage.assumingMemoryBound(to: v4l2_ext_control.self)
        do {
            try ioctl(cv4l2_VIDIOC_S_EXT_CTRLS, "VIDIOC_S_EXT_CTRLS", &request)
        } catch {
            // error_idx names the offending control when it is < count.
            if case let .ioctl(_, code) = error, request.error_idx < UInt32(controls.count) {
                throw .ioctl(request: "VIDIOC_S_EXT_CTRLS(\(controls[Int(request.error_idx)].id))", errno: code)
            }
            throw error
        }
    }

    public func encoderCommand(_ command: V4L2EncoderCommand) throws(V4L2Error) {
        var cmd = v4l2_encoder_cmd()
        cmd.cmd = command.rawValue
        try ioctl(cv4l2_VIDIOC_ENCODER_CMD, "VIDIOC_ENCODER_CMD", &cmd)
    }

    public func subscribeEvent(_ type: V4L2EventType) throws(V4L2Error) {
        var subscription = v4l2_event_subscription()
        subscription.type = type.rawValue
        try ioctl(cv4l2_VIDIOC_SUBSCRIBE_EVENT, "VIDIOC_SUBSCRIBE_EVENT", &subscription)
    }

    public func dequeueEvent() throws(V4L2Error) -> V4L2EventType? {
        var event = v4l2_event()
        // ENOENT: no event pending.
        guard try ioctl(cv4l2_VIDIOC_DQEVENT, "VIDIOC_DQEVENT", &event, absentOn: ENOENT) else { return nil }
        return V4L2EventType(rawValue: event.type)
    }

    public func mapBuffer(length: Int, offset: UInt32) throws(V4L2Error) -> UnsafeMutableRawBufferPointer {
        guard let address = Glibc.mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fileDescriptor, off_t(offset)),
              address != UnsafeMutableRawPointer(bitPattern: -1) else {
            let code = errno
            if V4L2Error.isDeviceGone(code) { throw .deviceGone }
            throw .mmap(errno: code)
        }
        return UnsafeMutableRawBufferPointer(start: address, count: length)
    }

    public func unmapBuffer(_ mapping: UnsafeMutableRawBufferPointer) {
        if let base = mapping.baseAddress { _ = Glibc.munmap(base, mapping.count) }
    }

    public func closeExportedBuffer(_ fd: Int32) {
        if fd >= 0 { _ = Glibc.close(fd) }
    }

    public func poll(events: V4L2PollEvents, timeoutMilliseconds: Int32) throws(V4L2Error) -> V4L2PollEvents {
        var entry = pollfd(fd: fileDescriptor, events: events.rawValue, revents: 0)
        while true {
            let ready = Glibc.poll(&entry, 1, timeoutMilliseconds)
            if ready >= 0 { return V4L2PollEvents(rawValue: ready == 0 ? 0 : entry.revents) }
            let code = errno
            if code == EINTR { continue }
            throw .poll(errno: code)
        }
    }

    public func close() {
        guard !isClosed else { return }
        isClosed = true
        _ = Glibc.close(fileDescriptor)
    }

    // MARK: marshalling

    /// Builds a `v4l2_buffer` (with a plane array for multi-planar types) from `buffer`, runs `body`
    /// on it, and reads the result back; nil when `body` returns false.
    private func withMarshalled(_ buffer: V4L2Buffer, _ body: (inout v4l2_buffer) throws(V4L2Error) -> Bool) throws(V4L2Error) -> V4L2Buffer? {
        var raw = v4l2_buffer()
        raw.index = buffer.index
        raw.type = buffer.type.rawValue
        raw.memory = buffer.memory.rawValue
        raw.flags = buffer.flags.rawValue
        raw.field = buffer.field
        raw.timestamp.tv_sec = Int(buffer.timestampMicroseconds / 1_000_000)
        raw.timestamp.tv_usec = Int(buffer.timestampMicroseconds % 1_000_000)
        raw.sequence = buffer.sequence
        if buffer.type.isMultiplanar {
            var planes = buffer.planes.prefix(Int(cv4l2_VIDEO_MAX_PLANES)).map { plane -> v4l2_plane in
                var p = v4l2_plane()
                p.length = plane.length
                p.bytesused = plane.bytesUsed
                p.data_offset = plane.dataOffset
                if buffer.memory == .dmabuf { p.m.fd = plane.dmabufFD } else { p.m.mem_offset = plane.memoryOffset }
                return p
            }
            raw.length = UInt32(planes.count)
            let ok = try planes.withUnsafeMutableBufferPointer { (pointer: inout UnsafeMutableBufferPointer<v4l2_plane>) throws(V4L2Error) -> Bool in
                raw.m.planes = pointer.baseAddress
                return try body(&raw)
            }
            guard ok else { return nil }
            var result = Self.unpackHeader(raw, memory: buffer.memory)
            result.planes = planes.prefix(Int(raw.length)).map { p in
                V4L2BufferPlane(length: p.length, bytesUsed: p.bytesused, dataOffset: p.data_offset,
                                memoryOffset: buffer.memory == .mmap ? p.m.mem_offset : 0,
                                dmabufFD: buffer.memory == .dmabuf ? p.m.fd : -1)
            }
            return result
        } else {
            let plane = buffer.planes.first ?? V4L2BufferPlane()
            raw.length = plane.length
            raw.bytesused = plane.bytesUsed
            if buffer.memory == .dmabuf { raw.m.fd = plane.dmabufFD } else { raw.m.offset = plane.memoryOffset }
            guard try body(&raw) else { return nil }
            var result = Self.unpackHeader(raw, memory: buffer.memory)
            result.planes = [V4L2BufferPlane(length: raw.length, bytesUsed: raw.bytesused, dataOffset: 0,
                                             memoryOffset: buffer.memory == .mmap ? raw.m.offset : 0,
                                             dmabufFD: buffer.memory == .dmabuf ? raw.m.fd : -1)]
            return result
        }
    }

    private static func unpackHeader(_ raw: v4l2_buffer, memory: V4L2Memory) -> V4L2Buffer {
        let seconds = UInt64(max(0, raw.timestamp.tv_sec))
        let micros = UInt64(max(0, raw.timestamp.tv_usec))
        return V4L2Buffer(index: raw.index, type: V4L2BufferType(rawValue: raw.type) ?? .videoCapture,
                          memory: V4L2Memory(rawValue: raw.memory) ?? memory,
                          flags: V4L2BufferFlags(rawValue: raw.flags), field: raw.field,
                          timestampMicroseconds: seconds * 1_000_000 + micros, sequence: raw.sequence, planes: [])
    }

    private static func pack(_ format: V4L2Format) -> v4l2_format {
        var raw = v4l2_format()
        var info = cv4l2_format_info(type: format.type.rawValue, width: format.width, height: format.height,
                                     pixelformat: format.pixelFormat.rawValue, field: format.field,
                                     colorspace: format.colorspace, num_planes: UInt32(format.planes.count))
        cv4l2_format_set(&raw, &info)
        for (i, plane) in format.planes.enumerated() {
            cv4l2_format_set_plane(&raw, UInt32(i), plane.bytesPerLine, plane.sizeImage)
        }
        return raw
    }

    private static func unpack(_ raw: v4l2_format) -> V4L2Format {
        var raw = raw
        var info = cv4l2_format_info()
        cv4l2_format_get(&raw, &info)
        var planes: [V4L2PlaneFormat] = []
        for i in 0..<min(max(info.num_planes, 1), cv4l2_VIDEO_MAX_PLANES) {
            var bytesPerLine: UInt32 = 0, sizeImage: UInt32 = 0
            cv4l2_format_get_plane(&raw, i, &bytesPerLine, &sizeImage)
            planes.append(V4L2PlaneFormat(bytesPerLine: bytesPerLine, sizeImage: sizeImage))
        }
        return V4L2Format(type: V4L2BufferType(rawValue: info.type) ?? .videoCapture, width: info.width, height: info.height,
                          pixelFormat: V4L2PixelFormat(rawValue: info.pixelformat), field: info.field,
                          colorspace: info.colorspace, planes: planes)
    }

    private static func unpack(_ parm: v4l2_streamparm) -> V4L2StreamParameters {
        let isOutput = V4L2BufferType(rawValue: parm.type)?.isOutput ?? false
        let capability = isOutput ? parm.parm.output.capability : parm.parm.capture.capability
        let fract = isOutput ? parm.parm.output.timeperframe : parm.parm.capture.timeperframe
        return V4L2StreamParameters(timePerFrame: V4L2Fraction(fract.numerator, fract.denominator),
                                    canSetTimePerFrame: capability & cv4l2_V4L2_CAP_TIMEPERFRAME != 0)
    }

    /// A C char array imported as a tuple → String (up to the first NUL).
    private static func string<Tuple>(fromCArray tuple: Tuple) -> String {
        withUnsafeBytes(of: tuple) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
    }

    /// Round-trips a format through the C structs (for tests of the marshalling; no device needed).
    static func roundTrip(_ format: V4L2Format) -> V4L2Format { unpack(pack(format)) }
}


/// ioctl(2) through the non-variadic C shim, for every V4L2 handle (the capture/M2M device and the
/// controls' own handle): EINTR retried; ENODEV/EIO/ENXIO → `.deviceGone`; anything else →
/// `.ioctl(request:errno:)`.
func v4l2Ioctl<Argument>(_ fileDescriptor: Int32, _ request: UInt, _ name: String,
                         _ argument: inout Argument) throws(V4L2Error) {
    try withUnsafeMutablePointer(to: &argument) { (pointer: UnsafeMutablePointer<Argument>) throws(V4L2Error) in
        while true {
            if cv4l2_ioctl(fileDescriptor, request, pointer) != -1 { return }
            let code = errno
            if code == EINTR { continue }
            throw V4L2Error.fromIoctl(name, errno: code)
        }
    }
}
