import V4L2

/// Which pixel formats to ask a camera for when x264 encodes its pictures: raw ones (NV12, YU12,
/// YUYV), or its MJPEG (decoded for x264, passed through to /snapshot.jpg and /stream.mjpg). Pure:
/// the camera's formats, sizes and rates come in as discovered (V4L2Discovery).
///
/// The rule under `auto`: raw when a raw format gives the size asked for at the rate asked for;
/// otherwise MJPEG when it gives that size at a higher rate than any raw format does there (a USB
/// webcam's 1280x720: YUYV at 10 fps, MJPEG at 30); otherwise raw (the driver then gives what it
/// can). A camera with MJPEG and no raw format at all captures MJPEG.
struct CameraFormatChoice: Equatable, Sendable {
    /// What to ask the camera for, best first.
    var formats: [V4L2PixelFormat]
    /// Why, for the log and /api/status.
    var reason: String

    static func choose(_ preference: CameraFormatPreference, camera: CameraDescription,
                       width: Int, height: Int, framesPerSecond: Int) throws(VideoEncoderPlanError) -> CameraFormatChoice {
        let offered = camera.formats.map(\.format.pixelFormat)
        let raw = V4L2VideoSource.preferredFormats.filter { offered.contains($0) }
        let hasMJPEG = offered.contains(.mjpeg)
        let size = "\(width)x\(height)"
        switch preference {
        case .raw:
            guard !raw.isEmpty else { throw .noRawFormat(camera.path, offered: offered.map(\.description)) }
            return CameraFormatChoice(formats: raw, reason: "raw pictures (--format raw)")
        case .mjpeg:
            guard hasMJPEG else { throw .cameraHasNoMJPEG(camera.path, offered: offered.map(\.description)) }
            return CameraFormatChoice(formats: [.mjpeg], reason: "MJPEG (--format mjpeg)")
        case .automatic:
            guard !raw.isEmpty else {
                guard hasMJPEG else { throw .noRawFormat(camera.path, offered: offered.map(\.description)) }
                return CameraFormatChoice(formats: [.mjpeg], reason: "MJPEG: the camera gives no raw format")
            }
            let rawRate = raw.compactMap { fastestRate(of: $0, in: camera, width: width, height: height) }.max()
            guard hasMJPEG else { return CameraFormatChoice(formats: raw, reason: "raw pictures: the camera has no MJPEG") }
            let jpegRate = fastestRate(of: .mjpeg, in: camera, width: width, height: height)
            // A rate within 1 % of the one asked for counts as it (30000/1001 is 30 fps).
            if let rawRate, rawRate >= Double(framesPerSecond) * 0.99 {
                return CameraFormatChoice(formats: raw, reason: "raw pictures: \(size) at \(rate(rawRate)) fps")
            }
            if let jpegRate, jpegRate > (rawRate ?? 0) {
                let rawText = rawRate.map { "raw only at \(rate($0)) fps" } ?? "no raw format at that size"
                return CameraFormatChoice(formats: [.mjpeg],
                                          reason: "MJPEG: \(size) at \(rate(jpegRate)) fps as MJPEG, \(rawText)")
            }
            return CameraFormatChoice(formats: raw, reason: "raw pictures: MJPEG is no faster at \(size)")
        }
    }

    /// The highest rate `format` gives at exactly `width`x`height` (nil: not that size, or no rate
    /// listed). A size range counts when it holds the size; its rates are those listed for its largest size.
    static func fastestRate(of format: V4L2PixelFormat, in camera: CameraDescription, width: Int, height: Int) -> Double? {
        guard let entry = camera.formats.first(where: { $0.format.pixelFormat == format }) else { return nil }
        let rates = entry.sizes.filter { $0.size.contains(width: UInt32(width), height: UInt32(height)) }.flatMap { size in
            size.intervals.map { interval -> Double in
                switch interval {
                case let .discrete(fraction): return fraction.framesPerSecond
                case let .stepwise(shortest, _, _): return shortest.framesPerSecond
                case let .continuous(shortest, _): return shortest.framesPerSecond
                }
            }
        }
        return rates.max()
    }

    private static func rate(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return tenths % 10 == 0 ? "\(tenths / 10)" : "\(tenths / 10).\(tenths % 10)"
    }
}
