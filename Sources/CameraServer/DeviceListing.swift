import RTCBase
import V4L2

/// Cameras and microphones rtcam can use: V4L2 capture devices with the raw formats, sizes and
/// rates rtcam can encode, ALSA capture PCMs from /proc/asound/pcm, and the synthetic sources.
/// Feeds `rtcam devices` and the settings page (GET /api/devices).
public enum DeviceListing {
    public struct Camera: Sendable {
        public var source: String
        public var name: String
        /// (pixel format, width, height, frame rates); rates empty when the driver lists none.
        public var modes: [(format: String, width: Int, height: Int, framesPerSecond: [Double])]
    }

    public struct Microphone: Sendable {
        public var source: String
        public var name: String
    }

    /// Sizes offered for drivers that give a range instead of a list (stepwise/continuous).
    static let commonSizes = [(640, 360), (640, 480), (800, 600), (1280, 720), (1920, 1080)]

    public static func cameras() -> [Camera] {
        var result: [Camera] = []
        let described = (try? V4L2Discovery.describeAll()) ?? []
        for case let (_, .success(description)) in described where description.kind == .videoCapture {
            var modes: [(String, Int, Int, [Double])] = []
            // Raw formats for an encoder, and H.264 a camera encodes itself (passthrough).
            for format in description.formats where V4L2VideoSource.canStream(format.format.pixelFormat) {
                for size in format.sizes {
                    let rates = size.intervals.compactMap { interval -> Double? in
                        if case let .discrete(fraction) = interval { return (fraction.framesPerSecond * 100).rounded() / 100 }
                        return nil
                    }
                    switch size.size {
                    case let .discrete(width, height):
                        modes.append((format.format.pixelFormat.description, Int(width), Int(height), rates))
                    default:
                        for (width, height) in commonSizes where size.size.contains(width: UInt32(width), height: UInt32(height)) {
                            modes.append((format.format.pixelFormat.description, width, height, rates.isEmpty ? [15, 25, 30] : rates))
                        }
                    }
                }
            }
            guard !modes.isEmpty else { continue }
            result.append(Camera(source: "v4l2:\(description.path)",
                                 name: "\(description.capability.card) (\(description.path))", modes: modes))
        }
        result.append(Camera(source: "test-pattern", name: "Test pattern (synthetic)",
                             modes: commonSizes.map { ("I420", $0.0, $0.1, [15, 25, 30]) }))
        return result
    }

    /// ALSA capture devices, through the plug layer (it converts rate and format when needed).
    public static func microphones() -> [Microphone] {
        var result: [Microphone] = []
        if let table = StateFiles.read("/proc/asound/pcm") {
            // "00-00: USB Audio : USB Audio : playback 1 : capture 1"
            for line in table.split(separator: "\n") where line.containsText("capture") {
                let fields = line.split(separator: ":").map { $0.trimmingSpaces }
                guard let ids = fields.first?.split(separator: "-"), ids.count == 2,
                      let card = Int(ids[0]), let device = Int(ids[1]) else { continue }
                let name = fields.count > 1 ? fields[1] : "card \(card)"
                result.append(Microphone(source: "alsa:plughw:\(card),\(device)", name: "\(name) (card \(card), device \(device))"))
            }
        }
        result.append(Microphone(source: "test-tone", name: "Test tone (synthetic)"))
        return result
    }

    static func json() -> String {
        var json = JSONWriter()
        json.beginObject()
        json.key("cameras")
        json.beginArray()
        for camera in cameras() {
            json.beginObject()
            json.field("source", camera.source)
            json.field("name", camera.name)
            json.key("sizes")
            json.beginArray()
            // One entry per size (formats merged), rates as whole numbers for the page's menus.
            var seen: [(Int, Int)] = []
            for mode in camera.modes where !seen.contains(where: { $0 == (mode.width, mode.height) }) {
                seen.append((mode.width, mode.height))
                let rates = Set(camera.modes.filter { $0.width == mode.width && $0.height == mode.height }
                    .flatMap { $0.framesPerSecond.map { Int($0.rounded()) } }).sorted()
                json.beginObject()
                json.field("width", mode.width)
                json.field("height", mode.height)
                json.key("fps")
                json.beginArray()
                for rate in rates { json.value(rate) }
                json.endArray()
                json.endObject()
            }
            json.endArray()
            json.endObject()
        }
        json.endArray()
        json.key("speakers")
        json.beginArray()
        for speaker in speakers() {
            json.beginObject()
            json.field("source", speaker.source)
            json.field("name", speaker.name)
            json.endObject()
        }
        json.endArray()
        json.key("microphones")
        json.beginArray()
        for microphone in microphones() {
            json.beginObject()
            json.field("source", microphone.source)
            json.field("name", microphone.name)
            json.endObject()
        }
        json.endArray()
        json.endObject()
        return json.text
    }

    /// What `rtcam devices` prints: like `v4l2-ctl --list-formats-ext`, only what rtcam can use.
    public static func report() -> String {
        var lines: [String] = []
        for camera in cameras() {
            lines.append("\(camera.source)  \(camera.name)")
            for mode in camera.modes {
                let rates = mode.framesPerSecond.map { $0 == $0.rounded() ? String(Int($0)) : String($0) }.joined(separator: ", ")
                lines.append("    \(mode.format)  \(mode.width)x\(mode.height)  \(rates.isEmpty ? "any rate" : rates + " fps")")
            }
        }
        lines.append("")
        for microphone in microphones() {
            lines.append("\(microphone.source)  \(microphone.name)")
        }
        return lines.joined(separator: "\n")
    }
}

extension DeviceListing {
    public struct Speaker: Sendable {
        public var source: String
        public var name: String
    }

    /// ALSA playback devices, through the plug layer (it converts format and channels).
    static func speakers(procTable: String? = StateFiles.read("/proc/asound/pcm")) -> [Speaker] {
        var result: [Speaker] = []
        guard let procTable else { return result }
        // "00-00: bcm2835 Headphones : bcm2835 Headphones : playback 8"
        for line in procTable.split(separator: "\n") where line.containsText("playback") {
            let fields = line.split(separator: ":").map { $0.trimmingSpaces }
            guard let ids = fields.first?.split(separator: "-"), ids.count == 2,
                  let card = Int(ids[0]), let device = Int(ids[1]) else { continue }
            let name = fields.count > 1 ? fields[1] : "card \(card)"
            result.append(Speaker(source: "alsa:plughw:\(card),\(device)", name: "\(name) (card \(card), device \(device))"))
        }
        return result
    }
}
