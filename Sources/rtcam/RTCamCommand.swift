import ArgumentParser
import CameraServer
import Logging

@main
struct RTCam: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rtcam",
        abstract: "A low-footprint camera daemon: live video and audio to any browser over WebRTC (WHEP).",
        subcommands: [Serve.self, Devices.self],
        defaultSubcommand: Serve.self)
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the camera (the default): viewer page, settings page, WHEP and the JSON API.")

    @Option(help: "HTTP port for the pages, the API and WHEP.")
    var httpPort = 8080

    @Option(help: "Address the HTTP server listens on.")
    var httpAddress = "0.0.0.0"

    @Option(help: "UDP port every viewer's media shares.")
    var mediaPort = 8189

    @Option(help: "Where the configuration, password and DTLS certificate are kept (systemd: $STATE_DIRECTORY).")
    var stateDir: String?

    // Settings: given here they win over the ones saved on the settings page, for this run.
    @Option(help: "Video source: auto, v4l2:/dev/videoN, test-pattern, file:PATH (Annex-B H.264). Default: saved setting, else auto.")
    var source: String?

    @Option(help: "Audio source: auto, alsa:NAME, test-tone, none. Default: saved setting, else auto.")
    var audio: String?

    @Option(help: "Picture size, WIDTHxHEIGHT. Default: saved setting, else 1280x720.")
    var size: String?

    @Option(help: "Frames per second. Default: saved setting, else 30.")
    var fps: Int?

    @Option(help: "Video bitrate in kbit/s. Default: saved setting, else 2000.")
    var bitrate: Int?

    @Option(help: "H.264 encoder: auto (the camera's own H.264, else a V4L2 M2M encoder, else x264), hardware, x264, passthrough. Default: saved setting, else auto.")
    var encoder: String?

    @Option(help: "Most viewers at once; more get 503 with Retry-After. Default: saved setting, else 10.")
    var maxViewers: Int?

    @Option(name: .customLong("candidate-address"),
            help: "An address to offer viewers as an ICE host candidate (repeatable; default: every interface address, else 127.0.0.1).")
    var candidateAddresses: [String] = []

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    func validate() throws {
        if let source, VideoSourceSetting(parsing: source) == nil {
            throw ValidationError("--source must be auto, v4l2:/dev/videoN, test-pattern or file:PATH (got '\(source)')")
        }
        if let audio, AudioSourceSetting(parsing: audio) == nil {
            throw ValidationError("--audio must be auto, alsa:NAME, test-tone or none (got '\(audio)')")
        }
        if let size, parsedSize == nil {
            throw ValidationError("--size must look like 1280x720, even numbers from 16 to 4096 (got '\(size)')")
        }
        if let fps, !(1...120).contains(fps) { throw ValidationError("--fps must be 1 to 120") }
        if let bitrate, !(50...50_000).contains(bitrate) { throw ValidationError("--bitrate must be 50 to 50000 kbit/s") }
        if let encoder, EncoderPreference(rawValue: encoder) == nil {
            throw ValidationError("--encoder must be one of \(EncoderPreference.allCases.map(\.rawValue).joined(separator: ", ")) (got '\(encoder)')")
        }
        if let maxViewers, !(1...1000).contains(maxViewers) { throw ValidationError("--max-viewers must be 1 to 1000") }
        guard (1...65535).contains(httpPort), (1...65535).contains(mediaPort) else { throw ValidationError("ports must be 1 to 65535") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level '\(logLevel)'") }
    }

    private var parsedSize: (Int, Int)? {
        guard let size else { return nil }
        let parts = size.split(separator: "x")
        guard parts.count == 2, let width = Int(parts[0]), let height = Int(parts[1]),
              (16...4096).contains(width), (16...4096).contains(height), width % 2 == 0, height % 2 == 0 else { return nil }
        return (width, height)
    }

    func run() throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "rtcam")
        var configuration = DaemonConfiguration()
        configuration.httpAddress = httpAddress
        configuration.httpPort = httpPort
        configuration.mediaPort = mediaPort
        configuration.stateDirectory = stateDir ?? Environment.value("STATE_DIRECTORY") ?? "/var/lib/rtcam"
        configuration.candidateAddresses = candidateAddresses
        configuration.overrides.maximumViewers = maxViewers
        configuration.overrides.video = source.flatMap(VideoSourceSetting.init(parsing:))
        configuration.overrides.audio = audio.flatMap(AudioSourceSetting.init(parsing:))
        if let (width, height) = parsedSize {
            configuration.overrides.width = width
            configuration.overrides.height = height
        }
        configuration.overrides.framesPerSecond = fps
        configuration.overrides.bitrateKbps = bitrate
        configuration.overrides.encoder = encoder.flatMap(EncoderPreference.init(rawValue:))
        do {
            try CameraDaemon(configuration: configuration, logger: logger).run()
        } catch {
            logger.critical("rtcam could not start: \(error)")
            throw ExitCode.failure
        }
    }
}

struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List cameras (with the formats, sizes and rates rtcam can encode) and microphones.")

    func run() throws {
        print(DeviceListing.report())
    }
}
