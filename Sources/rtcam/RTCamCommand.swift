import ArgumentParser
import CameraServer
import Logging

@main
struct RTCam: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rtcam",
        abstract: "A low-footprint camera daemon: live video and audio to any browser over WebRTC (WHEP).",
        subcommands: [Serve.self],
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

    @Option(help: "Video source: auto, v4l2:/dev/videoN, test-pattern, file:PATH (Annex-B H.264).")
    var source = "auto"

    @Option(help: "Audio source: auto, alsa:NAME, test-tone, none.")
    var audio = "auto"

    @Option(help: "Picture size, WIDTHxHEIGHT.")
    var size = "1280x720"

    @Option(help: "Frames per second.")
    var fps = 30

    @Option(help: "Video bitrate in kbit/s.")
    var bitrate = 2000

    @Option(help: "Most viewers at once; more get 503 with Retry-After.")
    var maxViewers = 10

    @Option(name: .customLong("candidate-address"),
            help: "An address to offer viewers as an ICE host candidate (repeatable; default: every interface address, else 127.0.0.1).")
    var candidateAddresses: [String] = []

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    func validate() throws {
        guard VideoSourceSetting(parsing: source) != nil else {
            throw ValidationError("--source must be auto, v4l2:/dev/videoN, test-pattern or file:PATH (got '\(source)')")
        }
        guard AudioSourceSetting(parsing: audio) != nil else {
            throw ValidationError("--audio must be auto, alsa:NAME, test-tone or none (got '\(audio)')")
        }
        guard parsedSize != nil else { throw ValidationError("--size must look like 1280x720, even numbers from 16 to 4096 (got '\(size)')") }
        guard (1...120).contains(fps) else { throw ValidationError("--fps must be 1 to 120") }
        guard (50...50_000).contains(bitrate) else { throw ValidationError("--bitrate must be 50 to 50000 kbit/s") }
        guard (1...1000).contains(maxViewers) else { throw ValidationError("--max-viewers must be 1 to 1000") }
        guard (1...65535).contains(httpPort), (1...65535).contains(mediaPort) else { throw ValidationError("ports must be 1 to 65535") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level '\(logLevel)'") }
    }

    private var parsedSize: (Int, Int)? {
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
        configuration.maximumViewers = maxViewers
        configuration.media.video = VideoSourceSetting(parsing: source) ?? .automatic
        configuration.media.audio = AudioSourceSetting(parsing: audio) ?? .automatic
        if let (width, height) = parsedSize {
            configuration.media.width = width
            configuration.media.height = height
        }
        configuration.media.framesPerSecond = fps
        configuration.media.bitrateKbps = bitrate
        do {
            try CameraDaemon(configuration: configuration, logger: logger).run()
        } catch {
            logger.critical("rtcam could not start: \(error)")
            throw ExitCode.failure
        }
    }
}
