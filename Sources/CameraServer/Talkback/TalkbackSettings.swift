/// Where talkback plays (`--speaker`, the settings page's "speaker"; issue 17).
public enum SpeakerSetting: Equatable, Sendable, CustomStringConvertible {
    /// The first ALSA playback PCM of the board (/proc/asound/pcm), else none.
    case automatic
    case alsa(deviceName: String)
    case none

    public init?(parsing text: String) {
        switch text {
        case "auto": self = .automatic
        case "none": self = .none
        default:
            guard text.hasPrefix("alsa:"), text.count > 5 else { return nil }
            self = .alsa(deviceName: String(text.dropFirst(5)))
        }
    }

    public var description: String {
        switch self {
        case .automatic: return "auto"
        case let .alsa(name): return "alsa:\(name)"
        case .none: return "none"
        }
    }
}

/// Who may talk through the camera.
public enum TalkPermission: String, Equatable, Sendable, CaseIterable {
    /// Everyone who may watch (the default).
    case viewers
    /// Only the logged-in owner (a viewer admitted by the owner's login session).
    case owner
}

public struct TalkbackSettings: Equatable, Sendable {
    public var speaker = SpeakerSetting.automatic
    /// 0...100 (SpeakerVolume's taper; 100 plays what the talker sent at its level).
    public var volumePercent = 100
    public var whoMayTalk = TalkPermission.viewers
    public var echo = EchoHandling.halfDuplex

    public init() {}
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
