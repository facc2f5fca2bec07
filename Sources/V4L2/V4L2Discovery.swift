import Glibc

/// What `rtcam devices` and the settings page show about one device node.
public struct CameraDescription: Equatable, Sendable {
    public var path: String
    public var capability: V4L2Capability
    public var kind: V4L2DeviceKind { capability.kind }
    public var isMultiplanar: Bool { capability.isMultiplanar }
    /// Formats of the capture queue: what a camera delivers, or what an M2M codec produces.
    public var formats: [CameraFormat]
    /// Formats of the output queue of an M2M device (the raw input of an encoder); empty otherwise.
    public var inputFormats: [CameraFormat]

    public init(path: String, capability: V4L2Capability, formats: [CameraFormat], inputFormats: [CameraFormat] = []) {
        self.path = path; self.capability = capability; self.formats = formats; self.inputFormats = inputFormats
    }
}

public struct CameraFormat: Equatable, Sendable {
    public var format: V4L2FormatDescription
    public var sizes: [CameraFrameSize]
    public init(format: V4L2FormatDescription, sizes: [CameraFrameSize]) { self.format = format; self.sizes = sizes }
}

public struct CameraFrameSize: Equatable, Sendable {
    public var size: V4L2FrameSize
    /// Frame intervals at this size (for a stepwise/continuous range: at its largest size).
    public var intervals: [V4L2FrameInterval]
    public init(size: V4L2FrameSize, intervals: [V4L2FrameInterval]) { self.size = size; self.intervals = intervals }
}

public enum V4L2Discovery {
    /// Upper bound on entries read from any ENUM_* ioctl, so a buggy driver cannot loop us forever.
    static let enumerationLimit: UInt32 = 256

    /// `/dev/video<N>` nodes in `directory`, sorted by N (opendir/readdir).
    public static func devicePaths(directory: String = "/dev") throws(V4L2Error) -> [String] {
        guard let dir = opendir(directory) else { throw .listDirectory(path: directory, errno: errno) }
        defer { closedir(dir) }
        var numbered: [(Int, String)] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard name.hasPrefix("video") else { continue }
            let suffix = name.dropFirst(5)
            guard !suffix.isEmpty, suffix.allSatisfy({ $0.isASCII && $0.isNumber }), let number = Int(suffix) else { continue }
            let separator = directory.hasSuffix("/") ? "" : "/"
            numbered.append((number, directory + separator + name))
        }
        return numbered.sorted { $0.0 < $1.0 }.map(\.1)
    }

    /// Opens `path`, asks QUERYCAP and enumerates formats, sizes and intervals, closes it again.
    public static func describe(path: String, opener: some V4L2DeviceOpener = KernelV4L2Opener()) throws(V4L2Error) -> CameraDescription {
        let device = try opener.open(path: path)
        defer { device.close() }
        let capability = try device.queryCapability()
        var description = CameraDescription(path: path, capability: capability, formats: [])
        switch capability.kind {
        case .videoCapture:
            description.formats = try formats(device, type: capability.captureBufferType)
        case .memoryToMemory:
            description.formats = try formats(device, type: capability.captureBufferType)
            description.inputFormats = try formats(device, type: capability.outputBufferType)
        case .metadata:
            description.formats = try formats(device, type: .metaCapture, withSizes: false)
        case .videoOutput, .other:
            break
        }
        return description
    }

    /// Every device node in `directory`, each described or with the error that stopped it.
    public static func describeAll(directory: String = "/dev", opener: some V4L2DeviceOpener = KernelV4L2Opener())
        throws(V4L2Error) -> [(path: String, result: Result<CameraDescription, V4L2Error>)] {
        try devicePaths(directory: directory).map { path in
            do throws(V4L2Error) {
                return (path, .success(try describe(path: path, opener: opener)))
            } catch {
                return (path, .failure(error))
            }
        }
    }

    static func formats(_ device: any V4L2DeviceIO, type: V4L2BufferType, withSizes: Bool = true) throws(V4L2Error) -> [CameraFormat] {
        var result: [CameraFormat] = []
        var index: UInt32 = 0
        while index < enumerationLimit, let format = try device.enumerateFormat(type: type, index: index) {
            index += 1
            result.append(CameraFormat(format: format, sizes: withSizes ? try sizes(device, format.pixelFormat) : []))
        }
        return result
    }

    static func sizes(_ device: any V4L2DeviceIO, _ pixelFormat: V4L2PixelFormat) throws(V4L2Error) -> [CameraFrameSize] {
        var result: [CameraFrameSize] = []
        var index: UInt32 = 0
        while index < enumerationLimit, let size = try device.enumerateFrameSize(pixelFormat: pixelFormat, index: index) {
            index += 1
            let (width, height): (UInt32, UInt32)
            switch size {
            case let .discrete(w, h): (width, height) = (w, h)
            case let .stepwise(_, maxW, _, _, maxH, _): (width, height) = (maxW, maxH)
            case let .continuous(_, maxW, _, maxH): (width, height) = (maxW, maxH)
            }
            var intervals: [V4L2FrameInterval] = []
            var intervalIndex: UInt32 = 0
            while intervalIndex < enumerationLimit,
                  let interval = try device.enumerateFrameInterval(pixelFormat: pixelFormat, width: width, height: height, index: intervalIndex) {
                intervalIndex += 1
                intervals.append(interval)
                if case .discrete = interval { continue }
                break  // stepwise/continuous: one entry (index 0) describes the whole range
            }
            result.append(CameraFrameSize(size: size, intervals: intervals))
            if case .discrete = size { continue }
            break  // stepwise/continuous sizes: only index 0 exists
        }
        return result
    }
}
