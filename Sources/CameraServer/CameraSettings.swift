/// Everything a person can change on the settings page, as saved in `config.json`.
public struct CameraSettings: Equatable, Sendable {
    public var media = MediaConfiguration()
    public var maximumViewers = 10
    /// Once a password exists, viewing (WHEP) needs it (a login session) or a viewing token, unless
    /// this is turned off. True by default, also for a config.json saved before the key existed.
    public var viewingRequiresPassword = true
    /// Talkback (issue 17): the speaker, its volume, who may talk.
    public var talkback = TalkbackSettings()
    /// Watching from outside the camera's network (issue 19): STUN and TURN servers (full ICE).
    public var traversal = TraversalSettings()

    public init() {}

    /// What is wrong with the settings, field by field (empty: valid).
    public func validationErrors() -> [(field: String, message: String)] {
        var errors: [(String, String)] = []
        if case let .v4l2(path) = media.video, !path.hasPrefix("/dev/") {
            errors.append(("source", "a V4L2 device is a path under /dev, like /dev/video0"))
        }
        if case let .file(path) = media.video, !path.hasPrefix("/") {
            errors.append(("source", "a file source needs an absolute path"))
        }
        if !(16...4096).contains(media.width) || media.width % 2 != 0 {
            errors.append(("width", "width must be an even number from 16 to 4096"))
        }
        if !(16...4096).contains(media.height) || media.height % 2 != 0 {
            errors.append(("height", "height must be an even number from 16 to 4096"))
        }
        if !(1...120).contains(media.framesPerSecond) { errors.append(("fps", "frame rate must be 1 to 120")) }
        if !(50...50_000).contains(media.bitrateKbps) { errors.append(("bitrateKbps", "bitrate must be 50 to 50000 kbit/s")) }
        if !(1...1000).contains(maximumViewers) { errors.append(("maxViewers", "viewer limit must be 1 to 1000")) }
        if !(0...100).contains(talkback.volumePercent) { errors.append(("speakerVolume", "speaker volume must be 0 to 100 %")) }
        errors += traversal.validationErrors()
        return errors
    }

    // MARK: - JSON (the file and the API share one form)

    /// `revealingSecrets`: the file keeps the TURN password and shared secret; the API only says
    /// whether they are set (`turnPasswordSet`, `turnSecretSet`), never their value.
    func json(revealingSecrets: Bool = true) -> String {
        var writer = JSONWriter()
        writer.beginObject()
        writer.field("source", media.video.description)
        writer.field("audio", media.audio.description)
        writer.field("width", media.width)
        writer.field("height", media.height)
        writer.field("fps", media.framesPerSecond)
        writer.field("bitrateKbps", media.bitrateKbps)
        writer.field("encoder", media.encoder.rawValue)
        writer.field("degradation", media.degradation.rawValue)
        writer.field("cameraFormat", media.cameraFormat.rawValue)
        writer.field("intraRefresh", media.intraRefresh)
        writer.field("maxViewers", maximumViewers)
        writer.field("viewingRequiresPassword", viewingRequiresPassword)
        writer.field("speaker", talkback.speaker.description)
        writer.field("speakerVolume", talkback.volumePercent)
        writer.field("whoMayTalk", talkback.whoMayTalk.rawValue)
        writer.field("echo", talkback.echo.rawValue)
        writer.field("stun", traversal.stunServers.joined(separator: " "))
        writer.field("turn", traversal.turnServer)
        writer.field("turnUser", traversal.turnUser)
        if revealingSecrets {
            writer.field("turnPassword", traversal.turnPassword)
            writer.field("turnSecret", traversal.turnSecret)
        } else {
            writer.field("turnPasswordSet", !traversal.turnPassword.isEmpty)
            writer.field("turnSecretSet", !traversal.turnSecret.isEmpty)
        }
        writer.endObject()
        return writer.text
    }

    struct InvalidField: Error, Equatable {
        var field: String
        var message: String
    }

    /// These settings with the fields present in `object` changed (a PUT may send only some).
    /// Unknown fields are refused, so a typo does not pass silently.
    func applying(_ object: JSONValue) throws(InvalidField) -> CameraSettings {
        guard case let .object(members) = object else { throw InvalidField(field: "", message: "expected a JSON object") }
        var result = self
        for (key, value) in members {
            switch key {
            case "source":
                guard let text = value.stringValue, let setting = VideoSourceSetting(parsing: text) else {
                    throw InvalidField(field: key, message: "source must be auto, test-pattern, v4l2:/dev/videoN, file:PATH or exec:COMMAND (one line)")
                }
                result.media.video = setting
            case "audio":
                guard let text = value.stringValue, let setting = AudioSourceSetting(parsing: text) else {
                    throw InvalidField(field: key, message: "audio must be auto, test-tone, none or alsa:NAME")
                }
                result.media.audio = setting
            case "width": result.media.width = try Self.integer(value, key)
            case "height": result.media.height = try Self.integer(value, key)
            case "fps": result.media.framesPerSecond = try Self.integer(value, key)
            case "bitrateKbps": result.media.bitrateKbps = try Self.integer(value, key)
            case "encoder":
                guard let text = value.stringValue, let encoder = EncoderPreference(rawValue: text) else {
                    throw InvalidField(field: key, message: "encoder must be one of " + EncoderPreference.allCases.map(\.rawValue).joined(separator: ", "))
                }
                result.media.encoder = encoder
            case "degradation":
                guard let text = value.stringValue, let preference = DegradationPreference(rawValue: text) else {
                    throw InvalidField(field: key, message: "degradation must be one of " + DegradationPreference.allCases.map(\.rawValue).joined(separator: ", "))
                }
                result.media.degradation = preference
            case "cameraFormat":
                guard let text = value.stringValue, let preference = CameraFormatPreference(rawValue: text) else {
                    throw InvalidField(field: key, message: "cameraFormat must be one of " + CameraFormatPreference.allCases.map(\.rawValue).joined(separator: ", "))
                }
                result.media.cameraFormat = preference
            case "intraRefresh":
                guard let flag = value.boolValue else { throw InvalidField(field: key, message: "must be true or false") }
                result.media.intraRefresh = flag
            case "maxViewers": result.maximumViewers = try Self.integer(value, key)
            case "viewingRequiresPassword":
                guard let flag = value.boolValue else { throw InvalidField(field: key, message: "must be true or false") }
                result.viewingRequiresPassword = flag
            case "speaker":
                guard let text = value.stringValue, let setting = SpeakerSetting(parsing: text) else {
                    throw InvalidField(field: key, message: "speaker must be auto, none or alsa:NAME")
                }
                result.talkback.speaker = setting
            case "speakerVolume": result.talkback.volumePercent = try Self.integer(value, key)
            case "echo":
                guard let text = value.stringValue, let echo = EchoHandling(rawValue: text) else {
                    throw InvalidField(field: key, message: "echo must be half-duplex, cancel or off")
                }
                result.talkback.echo = echo
            case "whoMayTalk":
                guard let text = value.stringValue, let permission = TalkPermission(rawValue: text) else {
                    throw InvalidField(field: key, message: "whoMayTalk must be viewers or owner")
                }
                result.talkback.whoMayTalk = permission
            case "stun":
                guard let text = value.stringValue else { throw InvalidField(field: key, message: "stun must be a string of HOST:PORT") }
                result.traversal.stunServers = text.split(whereSeparator: { $0 == " " || $0 == "," }).map(String.init)
            case "turn":
                guard let text = value.stringValue else { throw InvalidField(field: key, message: "turn must be a string") }
                result.traversal.turnServer = text.trimmingSpaces
            case "turnUser":
                guard let text = value.stringValue else { throw InvalidField(field: key, message: "turnUser must be a string") }
                result.traversal.turnUser = text
            case "turnPassword", "turnSecret":
                // The API never shows these: "" (what the page's empty field sends) keeps the saved
                // one, null removes it, anything else replaces it.
                let secret: String
                switch value {
                case .null: secret = ""
                case let .string(text) where text.isEmpty: continue
                case let .string(text): secret = text
                default: throw InvalidField(field: key, message: "\(key) must be a string or null")
                }
                if key == "turnPassword" { result.traversal.turnPassword = secret } else { result.traversal.turnSecret = secret }
            case "turnPasswordSet", "turnSecretSet":
                continue   // what GET /api/config shows instead of the secrets: read only
            default:
                throw InvalidField(field: key, message: "unknown setting '\(key)'")
            }
        }
        return result
    }

    private static func integer(_ value: JSONValue, _ field: String) throws(InvalidField) -> Int {
        guard let number = value.intValue else { throw InvalidField(field: field, message: "\(field) must be a whole number") }
        return number
    }
}

/// STUN and TURN servers (issue 19), saved with the other settings; `--stun` and `--turn*` win for a run.
public struct TraversalSettings: Equatable, Sendable {
    /// "HOST:PORT" each.
    public var stunServers: [String] = []
    /// "turn:HOST[:PORT][?transport=udp]", or "" for none.
    public var turnServer = ""
    public var turnUser = ""
    /// Long-term credentials (coturn `user=`), or coturn's shared secret (`static-auth-secret`).
    public var turnPassword = ""
    public var turnSecret = ""

    public init() {}

    func validationErrors() -> [(field: String, message: String)] {
        var errors: [(String, String)] = []
        for server in stunServers where STUNServerSpelling.hostAndPort(server) == nil {
            errors.append(("stun", "a STUN server is HOST:PORT, like stun.example.org:3478 (got '\(server)')"))
        }
        if !turnServer.isEmpty {
            do {
                _ = try TURNServerSpelling.parse(turnServer)
            } catch {
                errors.append(("turn", "\(error)"))
            }
            if turnPassword.isEmpty, turnSecret.isEmpty {
                errors.append(("turnPassword", "a TURN server needs a password (with a user) or a shared secret"))
            } else if turnSecret.isEmpty, turnUser.isEmpty {
                errors.append(("turnUser", "a TURN password goes with a user name"))
            }
        }
        return errors
    }
}

