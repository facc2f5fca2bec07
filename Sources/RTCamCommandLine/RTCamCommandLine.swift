import CameraServer
import ICE
import Logging

/// What `rtcam …` was asked to do.
public enum RTCamInvocation: Sendable {
    case serve(DaemonConfiguration, logLevel: Logger.Level)
    case listDevices
    /// Print this on standard output and exit 0.
    case showHelp(String)
}

/// rtcam's command line: `rtcam [serve] [options]` (serve is the default), `rtcam devices`,
/// `rtcam help [subcommand]`, `-h`/`--help` anywhere.
public enum RTCamCommandLine {
    public static let commandName = "rtcam"
    public static let abstract = "A low-footprint camera daemon: live video and audio to any browser over WebRTC (WHEP)."

    public static let serve = SubcommandDefinition(
        "serve",
        abstract: "Serve the camera: viewer page, settings page, WHEP and the JSON API.",
        options: [
            OptionDefinition("http-port", value: "port", help: "HTTP port for the pages, the API and WHEP.", default: "8080"),
            OptionDefinition("http-address", value: "address", help: "Address the HTTP, HTTPS and RTSP servers listen on (:: is IPv6 and IPv4 alike).", default: "::"),
            OptionDefinition("https-port", value: "port",
                             help: "HTTPS port (TLS 1.2+, a self-signed certificate made on first start unless --tls-cert is given); 0 turns HTTPS off.",
                             default: "8443"),
            OptionDefinition("tls-cert", value: "file", help: "Your own certificate chain for HTTPS (PEM, leaf first); with --tls-key."),
            OptionDefinition("tls-key", value: "file", help: "The private key of --tls-cert (PEM, unencrypted)."),
            OptionDefinition("media-port", value: "port", help: "UDP port every viewer's media shares.", default: "8189"),
            OptionDefinition("rtsp-port", value: "port",
                             help: "RTSP port for NVRs, VLC and FFmpeg (rtsp://HOST:PORT/, the same H.264 and Opus); 0 turns RTSP off.",
                             default: "8554"),
            OptionDefinition("state-dir", value: "directory",
                             help: "Where the configuration, password and DTLS certificate are kept. Default: $STATE_DIRECTORY (systemd), else /var/lib/rtcam."),
            // Settings: given here they win over the ones saved on the settings page, for this run.
            OptionDefinition("source", value: "source",
                             help: "Video source: auto, v4l2:/dev/videoN, test-pattern, file:PATH (Annex-B H.264), exec:COMMAND (a program writing Annex-B H.264 to stdout, e.g. rpicam-vid; {width} {height} {fps} {bitrate} {kbps} filled in). Default: saved setting, else auto."),
            OptionDefinition("audio", value: "audio", help: "Audio source: auto, alsa:NAME, test-tone, none. Default: saved setting, else auto."),
            OptionDefinition("speaker", value: "speaker",
                             help: "Talkback speaker (viewers talk through the camera): auto (the first ALSA playback device, else none), alsa:NAME, none. Default: saved setting, else auto."),
            OptionDefinition("echo", value: "echo",
                             help: "While a viewer talks: half-duplex (mute the microphone), cancel (speexdsp echo cancellation, full duplex), off. Default: saved setting, else half-duplex."),
            OptionDefinition("size", value: "WIDTHxHEIGHT", help: "Picture size. Default: saved setting, else 1280x720."),
            OptionDefinition("fps", value: "fps", help: "Frames per second. Default: saved setting, else 30."),
            OptionDefinition("bitrate", value: "kbit/s", help: "Video bitrate in kbit/s. Default: saved setting, else 2000."),
            OptionDefinition("encoder", value: "encoder",
                             help: "H.264 encoder: auto (the camera's own H.264, else a V4L2 M2M encoder, else x264), hardware, x264, passthrough. Default: saved setting, else auto."),
            OptionDefinition("format", value: "format",
                             help: "The camera's pixel format for x264: auto (raw pictures when the camera gives them at the size and rate asked for, else its MJPEG when that is faster there), raw, mjpeg (the camera's JPEGs go to /snapshot.jpg and /stream.mjpg as they are and are decoded for x264). Default: saved setting, else auto."),
            OptionDefinition("degradation", value: "preference",
                             help: "When x264 cannot keep up on this CPU (encode time over 85 % of the frame interval): resolution (encode a smaller picture), framerate (fewer frames), balanced (both in turn) or off. Back up when there is room again. Default: saved setting, else resolution."),
            OptionDefinition("intra-refresh", value: "on|off",
                             help: "x264 periodic intra refresh instead of periodic IDR keyframes, so no keyframe bursts on the link (viewers joining and PLI still get an IDR). Default: saved setting, else off."),
            OptionDefinition("max-viewers", value: "count", help: "Most viewers at once; more get 503 with Retry-After. Default: saved setting, else 10."),
            OptionDefinition("candidate-address", value: "address",
                             help: "An address to offer viewers as an ICE host candidate (repeatable; default: every interface address, else 127.0.0.1).",
                             repeatable: true),
            OptionDefinition("ice", value: "mode",
                             help: "ICE: full (rtcam checks too, so viewers behind NATs reach it) or lite (answers checks only: a camera on a public address).",
                             default: "full"),
            OptionDefinition("stun", value: "HOST:PORT",
                             help: "A STUN server to learn rtcam's public address from, offered as a server-reflexive candidate (repeatable; full ICE). Default: saved setting, else none.",
                             repeatable: true),
            OptionDefinition("turn", value: "turn:HOST[:PORT][?transport=udp|tcp] | turns:HOST[:PORT]",
                             help: "A TURN server (coturn, RFC 8656) to keep a relayed address on, offered as a relay candidate: viewers behind NATs no direct path crosses watch through it (full ICE). UDP by default; ?transport=tcp or turns: (TLS, port 5349 unless given, 443 where only HTTPS gets out) when the camera's network blocks outbound UDP. Default: saved setting, else none."),
            OptionDefinition("turn-ca", value: "file",
                             help: "The CA certificate (PEM) a turns: server's certificate must chain to, for a private CA. Default: the system's CA store (/etc/ssl/certs/ca-certificates.crt)."),
            OptionDefinition("turn-user", value: "name", help: "The TURN user name (with --turn-password; with --turn-secret the name in the REST credentials)."),
            OptionDefinition("turn-password", value: "password",
                             help: "The TURN user's password (coturn user=NAME:PASSWORD). Visible to other local users in the process list: the settings page keeps it in the state directory instead."),
            OptionDefinition("turn-secret", value: "secret",
                             help: "coturn's shared secret (use-auth-secret, static-auth-secret=): rtcam makes time-limited REST credentials from it."),
            OptionDefinition("ice-tcp", value: "on|off",
                             help: "ICE-TCP (RFC 6544): offer a passive TCP candidate, for viewers whose networks block UDP (full ICE; Chromium uses it, Firefox does not).",
                             default: "on"),
            OptionDefinition("ice-tcp-port", value: "port", help: "TCP port of the ICE-TCP candidate.", default: "the media port"),
            OptionDefinition("host-name", value: "name",
                             help: "A DNS name the camera is reached by, accepted in Host besides IP addresses, its host name, <host name>.local and localhost (repeatable).",
                             repeatable: true),
            OptionDefinition("log-level", value: "level", help: "Log level: trace, debug, info, notice, warning, error, critical.", default: "info"),
        ])

    public static let devices = SubcommandDefinition(
        "devices", abstract: "List cameras (with the formats, sizes and rates rtcam can encode) and microphones.")

    static let subcommands = [serve, devices]

    /// - Parameters:
    ///   - arguments: the arguments after the program name.
    ///   - stateDirectoryFromEnvironment: `$STATE_DIRECTORY`, which systemd sets for StateDirectory=.
    ///   - workingDirectory: the process's current directory, against which a relative
    ///     `--source file:PATH` is made absolute (the settings keep only absolute paths: a relative
    ///     one would make every later settings change invalid). Without it, a relative path is refused.
    public static func parse(_ arguments: [String], stateDirectoryFromEnvironment: String? = nil,
                             workingDirectory: String? = nil)
        throws(CommandLineError) -> RTCamInvocation
    {
        guard let first = arguments.first else {
            return try serveInvocation(ParsedOptions(), stateDirectoryFromEnvironment: stateDirectoryFromEnvironment,
                                       workingDirectory: workingDirectory)
        }
        let subcommand: SubcommandDefinition
        var rest = arguments.dropFirst()
        switch first {
        case "-h", "--help":
            return .showHelp(overview)
        case "help":
            guard let topic = rest.first else { return .showHelp(overview) }
            guard let definition = subcommands.first(where: { $0.name == topic }) else { throw .unknownSubcommand(topic) }
            if let extra = rest.dropFirst().first { throw .unexpectedArgument(extra) }
            return .showHelp(definition.helpText(commandName: commandName))
        case let name where !name.hasPrefix("-"):
            guard let definition = subcommands.first(where: { $0.name == name }) else { throw .unknownSubcommand(name) }
            subcommand = definition
        default:
            subcommand = serve           // `rtcam --source test-pattern` means `rtcam serve --source …`
            rest = arguments[...]
        }
        switch try subcommand.parse(rest) {
        case .helpRequested:
            return .showHelp(subcommand.helpText(commandName: commandName))
        case .options where subcommand.name == devices.name:
            return .listDevices           // devices takes no options: parse() refused any
        case let .options(options):
            return try serveInvocation(options, stateDirectoryFromEnvironment: stateDirectoryFromEnvironment,
                                       workingDirectory: workingDirectory)
        }
    }

    /// `rtcam --help`.
    public static var overview: String {
        var lines = overviewLines(abstract, width: 80)
        lines += ["", "USAGE: \(commandName) <subcommand>", "", "SUBCOMMANDS:"]
        lines += twoColumns(subcommands.map { ($0.name + ($0.name == serve.name ? " (default)" : ""), $0.abstract) }, width: 80)
        lines += ["", "  See '\(commandName) help <subcommand>' for detailed help."]
        return lines.joined(separator: "\n")
    }

    /// What goes to standard error for a bad command line (exit status 64, EX_USAGE).
    public static func errorMessage(_ error: CommandLineError, arguments: [String]) -> String {
        let subcommand = subcommands.first { $0.name == arguments.first } ?? serve
        if case .unknownSubcommand = error {
            return "Error: \(error)\n\n" + overview
        }
        return "Error: \(error)\nSee '\(commandName) \(subcommand.name) --help' for every option."
    }

    static func serveInvocation(_ options: ParsedOptions, stateDirectoryFromEnvironment: String?,
                                workingDirectory: String? = nil)
        throws(CommandLineError) -> RTCamInvocation
    {
        var configuration = DaemonConfiguration()
        configuration.httpAddress = options.value("http-address") ?? configuration.httpAddress
        configuration.httpPort = try integer(options, "http-port", in: 1...65535, reason: "--http-port must be 1 to 65535") ?? configuration.httpPort
        configuration.mediaPort = try integer(options, "media-port", in: 1...65535, reason: "--media-port must be 1 to 65535") ?? configuration.mediaPort
        if let rtspPort = try integer(options, "rtsp-port", in: 0...65535, reason: "--rtsp-port must be 0 (off) to 65535") {
            configuration.rtspPort = rtspPort == 0 ? nil : rtspPort
        }
        if let httpsPort = try integer(options, "https-port", in: 0...65535, reason: "--https-port must be 0 (off) to 65535") {
            configuration.httpsPort = httpsPort == 0 ? nil : httpsPort
        }
        configuration.tlsCertificatePath = options.value("tls-cert")
        configuration.tlsKeyPath = options.value("tls-key")
        if (configuration.tlsCertificatePath == nil) != (configuration.tlsKeyPath == nil) {
            throw .invalidValue(option: configuration.tlsCertificatePath == nil ? "tls-key" : "tls-cert",
                                reason: "--tls-cert and --tls-key go together")
        }
        // systemd sets $STATE_DIRECTORY for StateDirectory=; an empty one counts as unset.
        if let directory = options.value("state-dir") ?? stateDirectoryFromEnvironment.flatMap({ $0.isEmpty ? nil : $0 }) {
            guard !directory.isEmpty else { throw .invalidValue(option: "state-dir", reason: "--state-dir must not be empty") }
            configuration.stateDirectory = directory
        }
        configuration.candidateAddresses = options.all("candidate-address")
        configuration.hostNames = options.all("host-name")
        if let ice = options.value("ice") {
            guard let mode = ICEMode(rawValue: ice) else {
                throw .invalidValue(option: "ice", reason: "--ice must be full or lite (got '\(ice)')")
            }
            configuration.iceMode = mode
        }
        let stun = options.all("stun")
        if !stun.isEmpty { configuration.overrides.stunServers = stun }
        configuration.overrides.turnServer = options.value("turn")
        configuration.turnCAPath = options.value("turn-ca")
        configuration.overrides.turnUser = options.value("turn-user")
        configuration.overrides.turnPassword = options.value("turn-password")
        configuration.overrides.turnSecret = options.value("turn-secret")
        if let iceTCP = options.value("ice-tcp") {
            guard iceTCP == "on" || iceTCP == "off" else {
                throw .invalidValue(option: "ice-tcp", reason: "--ice-tcp must be on or off (got '\(iceTCP)')")
            }
            configuration.iceTCP = iceTCP == "on"
        }
        configuration.iceTCPPort = try integer(options, "ice-tcp-port", in: 1...65535, reason: "--ice-tcp-port must be 1 to 65535")
        if let source = options.value("source") {
            guard let setting = VideoSourceSetting(parsing: source) else {
                throw .invalidValue(option: "source", reason: "--source must be auto, v4l2:/dev/videoN, test-pattern, file:PATH or exec:COMMAND (got '\(source)')")
            }
            configuration.overrides.video = try absolute(setting, workingDirectory: workingDirectory)
        }
        if let audio = options.value("audio") {
            guard let setting = AudioSourceSetting(parsing: audio) else {
                throw .invalidValue(option: "audio", reason: "--audio must be auto, alsa:NAME, test-tone or none (got '\(audio)')")
            }
            configuration.overrides.audio = setting
        }
        if let speaker = options.value("speaker") {
            guard let setting = SpeakerSetting(parsing: speaker) else {
                throw .invalidValue(option: "speaker", reason: "--speaker must be auto, alsa:NAME or none (got '\(speaker)')")
            }
            configuration.overrides.speaker = setting
        }
        if let echo = options.value("echo") {
            guard let setting = EchoHandling(rawValue: echo) else {
                throw .invalidValue(option: "echo", reason: "--echo must be half-duplex, cancel or off (got '\(echo)')")
            }
            configuration.overrides.echo = setting
        }
        if let size = options.value("size") {
            guard let (width, height) = pictureSize(size) else {
                throw .invalidValue(option: "size", reason: "--size must look like 1280x720, even numbers from 16 to 4096 (got '\(size)')")
            }
            configuration.overrides.width = width
            configuration.overrides.height = height
        }
        configuration.overrides.framesPerSecond = try integer(options, "fps", in: 1...120, reason: "--fps must be 1 to 120")
        configuration.overrides.bitrateKbps = try integer(options, "bitrate", in: 50...50_000, reason: "--bitrate must be 50 to 50000 kbit/s")
        if let encoder = options.value("encoder") {
            guard let preference = EncoderPreference(rawValue: encoder) else {
                let names = EncoderPreference.allCases.map(\.rawValue).joined(separator: ", ")
                throw .invalidValue(option: "encoder", reason: "--encoder must be one of \(names) (got '\(encoder)')")
            }
            configuration.overrides.encoder = preference
        }
        if let format = options.value("format") {
            guard let preference = CameraFormatPreference(rawValue: format) else {
                let names = CameraFormatPreference.allCases.map(\.rawValue).joined(separator: ", ")
                throw .invalidValue(option: "format", reason: "--format must be one of \(names) (got '\(format)')")
            }
            configuration.overrides.cameraFormat = preference
        }
        if let degradation = options.value("degradation") {
            guard let preference = DegradationPreference(rawValue: degradation) else {
                let names = DegradationPreference.allCases.map(\.rawValue).joined(separator: ", ")
                throw .invalidValue(option: "degradation", reason: "--degradation must be one of \(names) (got '\(degradation)')")
            }
            configuration.overrides.degradation = preference
        }
        if let intraRefresh = options.value("intra-refresh") {
            switch intraRefresh {
            case "on": configuration.overrides.intraRefresh = true
            case "off": configuration.overrides.intraRefresh = false
            default: throw .invalidValue(option: "intra-refresh", reason: "--intra-refresh must be on or off (got '\(intraRefresh)')")
            }
        }
        configuration.overrides.maximumViewers = try integer(options, "max-viewers", in: 1...1000, reason: "--max-viewers must be 1 to 1000")
        let levelName = options.value("log-level") ?? "info"
        guard let level = Logger.Level(rawValue: levelName) else {
            throw .invalidValue(option: "log-level", reason: "--log-level must be trace, debug, info, notice, warning, error or critical (got '\(levelName)')")
        }
        return .serve(configuration, logLevel: level)
    }

    /// `file:clip.h264` → `file:/where/rtcam/started/clip.h264`.
    static func absolute(_ setting: VideoSourceSetting, workingDirectory: String?)
        throws(CommandLineError) -> VideoSourceSetting
    {
        guard case let .file(path) = setting, !path.hasPrefix("/") else { return setting }
        guard let directory = workingDirectory, directory.hasPrefix("/") else {
            throw .invalidValue(option: "source", reason: "--source file: needs an absolute path (got '\(path)')")
        }
        var relative = Substring(path)
        while relative.hasPrefix("./") { relative = relative.dropFirst(2) }
        return .file(path: (directory.hasSuffix("/") ? directory : directory + "/") + relative)
    }

    private static func integer(_ options: ParsedOptions, _ name: String, in range: ClosedRange<Int>, reason: String)
        throws(CommandLineError) -> Int?
    {
        guard let text = options.value(name) else { return nil }
        guard let value = Int(text), range.contains(value) else {
            throw .invalidValue(option: name, reason: reason + " (got '\(text)')")
        }
        return value
    }

    /// "1280x720" → (1280, 720): even sizes from 16 to 4096, as the encoders need.
    static func pictureSize(_ text: String) -> (Int, Int)? {
        let parts = text.split(separator: "x", omittingEmptySubsequences: false)
        guard parts.count == 2, let width = Int(parts[0]), let height = Int(parts[1]),
              (16...4096).contains(width), (16...4096).contains(height), width % 2 == 0, height % 2 == 0 else { return nil }
        return (width, height)
    }
}
