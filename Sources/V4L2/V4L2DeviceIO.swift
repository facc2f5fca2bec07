/// The seam between rtcam's V4L2 state machines and the kernel: one open device node.
///
/// Each requirement is one ioctl (or mmap/munmap/poll/close) with Swift values instead of C structs,
/// so no C type crosses a public API and unit tests can script a fake camera or a fake stateful
/// encoder. The real implementation, `KernelV4L2Device`, marshals every call through one helper
/// that retries EINTR and throws `V4L2Error.ioctl(request:errno:)` / `.deviceGone`.
public protocol V4L2DeviceIO: AnyObject {
    /// The file descriptor the daemon's event loop polls (readable = a buffer can be dequeued).
    var fileDescriptor: Int32 { get }

    /// VIDIOC_QUERYCAP.
    func queryCapability() throws(V4L2Error) -> V4L2Capability
    /// VIDIOC_ENUM_FMT; nil past the last index (EINVAL).
    func enumerateFormat(type: V4L2BufferType, index: UInt32) throws(V4L2Error) -> V4L2FormatDescription?
    /// VIDIOC_ENUM_FRAMESIZES; nil past the last index (EINVAL) or when the driver does not implement it.
    func enumerateFrameSize(pixelFormat: V4L2PixelFormat, index: UInt32) throws(V4L2Error) -> V4L2FrameSize?
    /// VIDIOC_ENUM_FRAMEINTERVALS; nil past the last index.
    func enumerateFrameInterval(pixelFormat: V4L2PixelFormat, width: UInt32, height: UInt32, index: UInt32) throws(V4L2Error) -> V4L2FrameInterval?
    /// VIDIOC_G_FMT.
    func getFormat(type: V4L2BufferType) throws(V4L2Error) -> V4L2Format
    /// VIDIOC_S_FMT: returns the format the driver actually set (it may adjust sizes and formats).
    func setFormat(_ format: V4L2Format) throws(V4L2Error) -> V4L2Format
    /// VIDIOC_G_PARM.
    func getStreamParameters(type: V4L2BufferType) throws(V4L2Error) -> V4L2StreamParameters
    /// VIDIOC_S_PARM: returns what the driver set.
    func setStreamParameters(type: V4L2BufferType, timePerFrame: V4L2Fraction) throws(V4L2Error) -> V4L2StreamParameters
    /// VIDIOC_REQBUFS: returns the number of buffers granted (0 frees them).
    func requestBuffers(type: V4L2BufferType, memory: V4L2Memory, count: UInt32) throws(V4L2Error) -> UInt32
    /// VIDIOC_QUERYBUF (`planeCount` planes for multi-planar types).
    func queryBuffer(type: V4L2BufferType, memory: V4L2Memory, index: UInt32, planeCount: Int) throws(V4L2Error) -> V4L2Buffer
    /// VIDIOC_QBUF.
    func queueBuffer(_ buffer: V4L2Buffer) throws(V4L2Error)
    /// VIDIOC_DQBUF on a non-blocking fd: nil when no buffer is ready (EAGAIN).
    func dequeueBuffer(type: V4L2BufferType, memory: V4L2Memory, planeCount: Int) throws(V4L2Error) -> V4L2Buffer?
    /// VIDIOC_EXPBUF: a DMABUF fd (O_CLOEXEC, read-only) for one plane of an MMAP buffer.
    func exportBuffer(type: V4L2BufferType, index: UInt32, plane: UInt32) throws(V4L2Error) -> Int32
    /// VIDIOC_STREAMON.
    func streamOn(type: V4L2BufferType) throws(V4L2Error)
    /// VIDIOC_STREAMOFF (returns every queued buffer to the application).
    func streamOff(type: V4L2BufferType) throws(V4L2Error)
    /// VIDIOC_S_EXT_CTRLS in one control class.
    func setControls(_ controls: [V4L2Control]) throws(V4L2Error)
    /// VIDIOC_ENCODER_CMD.
    func encoderCommand(_ command: V4L2EncoderCommand) throws(V4L2Error)
    /// VIDIOC_SUBSCRIBE_EVENT.
    func subscribeEvent(_ type: V4L2EventType) throws(V4L2Error)
    /// VIDIOC_DQEVENT: nil when no event is pending.
    func dequeueEvent() throws(V4L2Error) -> V4L2EventType?

    /// mmap(2) a buffer plane (PROT_READ|PROT_WRITE, MAP_SHARED) at `offset` from QUERYBUF.
    func mapBuffer(length: Int, offset: UInt32) throws(V4L2Error) -> UnsafeMutableRawBufferPointer
    /// munmap(2).
    func unmapBuffer(_ mapping: UnsafeMutableRawBufferPointer)
    /// close(2) a DMABUF fd obtained from `exportBuffer`.
    func closeExportedBuffer(_ fd: Int32)
    /// poll(2) this device for `events`; returns the events that are ready (empty on timeout).
    func poll(events: V4L2PollEvents, timeoutMilliseconds: Int32) throws(V4L2Error) -> V4L2PollEvents
    /// close(2) the device node. Calls after this are invalid.
    func close()
}

/// Opens device nodes: the kernel (`KernelV4L2Opener`) or a test's fake.
public protocol V4L2DeviceOpener: Sendable {
    /// Opens `path` read-write and non-blocking.
    func open(path: String) throws(V4L2Error) -> any V4L2DeviceIO
}
