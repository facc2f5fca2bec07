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

/// How talkback keeps the camera's microphone from sending the talker back their own voice
/// (issue 17; the settings page's "echo").
public enum EchoHandling: String, Equatable, Sendable, CaseIterable {
    /// The microphone is muted while talkback plays and 200 ms after (the default).
    case halfDuplex = "half-duplex"
    /// Full duplex: speexdsp's echo canceller takes what the speaker played out of the microphone.
    case cancel
    /// Full duplex, nothing done (a headset, or a speaker far from the microphone).
    case off
}

public struct TalkbackSettings: Equatable, Sendable {
    public var speaker = SpeakerSetting.automatic
    /// 0...100 (SpeakerVolume's taper; 100 plays what the talker sent at its level).
    public var volumePercent = 100
    public var whoMayTalk = TalkPermission.viewers
    public var echo = EchoHandling.halfDuplex

    public init() {}
}
