/// Every failure of the V4L2 target. Callers can switch on it: `.deviceGone` means the camera or
/// codec disappeared (unplugged, driver unbound) and the only way forward is `reopen`.
public enum V4L2Error: Error, Equatable, Sendable, CustomStringConvertible {
    /// An ioctl failed with `errno` (EINTR is retried, never reported).
    case ioctl(request: String, errno: Int32)
    /// The device is gone: ENODEV, EIO or ENXIO from any call.
    case deviceGone
    /// open(2) failed.
    case open(path: String, errno: Int32)
    /// mmap(2) failed.
    case mmap(errno: Int32)
    /// poll(2) failed.
    case poll(errno: Int32)
    /// Reading a directory (discovery) failed.
    case listDirectory(path: String, errno: Int32)
    /// The device cannot do what was asked (not a capture device, no streaming I/O, not an encoder…).
    case unsupportedDevice(path: String, reason: String)
    /// None of the pixel formats the caller accepts is offered by the device.
    case noAcceptableFormat(requested: [V4L2PixelFormat], offered: [V4L2PixelFormat])
    /// The driver granted fewer buffers than streaming needs.
    case tooFewBuffers(requested: Int, granted: Int)
    /// A call that is not valid in the current state (e.g. reading frames before `start`).
    case invalidState(String)
    /// A frame handed back that this capture did not hand out (or handed back twice).
    case unknownFrame(index: Int)

    public var description: String {
        switch self {
        case let .ioctl(request, errno): return "\(request) failed: errno \(errno)"
        case .deviceGone: return "device gone"
        case let .open(path, errno): return "open \(path) failed: errno \(errno)"
        case let .mmap(errno): return "mmap failed: errno \(errno)"
        case let .poll(errno): return "poll failed: errno \(errno)"
        case let .listDirectory(path, errno): return "listing \(path) failed: errno \(errno)"
        case let .unsupportedDevice(path, reason): return "\(path): \(reason)"
        case let .noAcceptableFormat(requested, offered):
            return "no acceptable pixel format: wanted \(requested), device offers \(offered)"
        case let .tooFewBuffers(requested, granted): return "requested \(requested) buffers, driver granted \(granted)"
        case let .invalidState(what): return "invalid state: \(what)"
        case let .unknownFrame(index): return "frame with buffer index \(index) is not held by the consumer"
        }
    }

    /// Errno values meaning the device is no longer there (USB unplug returns ENODEV; some drivers EIO).
    static func isDeviceGone(_ errno: Int32) -> Bool {
        errno == 19 /* ENODEV */ || errno == 5 /* EIO */ || errno == 6 /* ENXIO */
    }

    /// The typed error for a failed ioctl: `.deviceGone` when the device vanished.
    public static func fromIoctl(_ request: String, errno: Int32) -> V4L2Error {
        isDeviceGone(errno) ? .deviceGone : .ioctl(request: request, errno: errno)
    }
}
