import CameraServer
import ICE
import Logging
import Testing
@testable import RTCamCommandLine

/// rtcam's command line, as systemd (ExecStart=/usr/bin/rtcam serve --state-dir … $RTCAM_OPTIONS),
/// the README and the board scripts use it.
@Suite struct RTCamCommandLineTests {
    private func serve(_ arguments: [String], environment: String? = nil) throws -> (DaemonConfiguration, Logger.Level) {
        guard case let .serve(configuration, level) = try RTCamCommandLine.parse(arguments, stateDirectoryFromEnvironment: environment) else {
            Issue.record("\(arguments) did not mean serve")
            throw CommandLineError.unexpectedArgument("")
        }
        return (configuration, level)
    }

    private func error(_ arguments: [String]) -> CommandLineError? {
        do {
            _ = try RTCamCommandLine.parse(arguments)
            return nil
        } catch {
            return error
        }
    }

    @Test func noArgumentsServeWithTheDefaults() throws {
        let (configuration, level) = try serve([])
        #expect(configuration.httpPort == 8080)
        #expect(configuration.httpAddress == "::")
        #expect(configuration.mediaPort == 8189)
        #expect(configuration.stateDirectory == "/var/lib/rtcam")
        #expect(configuration.candidateAddresses.isEmpty)
        #expect(configuration.hostNames.isEmpty && configuration.httpsPort == 8443)
        #expect(configuration.tlsCertificatePath == nil && configuration.tlsKeyPath == nil)
        #expect(configuration.overrides.video == nil && configuration.overrides.framesPerSecond == nil)
        #expect(level == .info)
    }

    @Test func httpsOptions() throws {
        #expect(try serve(["--https-port", "0"]).0.httpsPort == nil)
        #expect(try serve(["--https-port=9443"]).0.httpsPort == 9443)
        let own = try serve(["--tls-cert", "/etc/rtcam/cert.pem", "--tls-key", "/etc/rtcam/key.pem"]).0
        #expect(own.tlsCertificatePath == "/etc/rtcam/cert.pem" && own.tlsKeyPath == "/etc/rtcam/key.pem")
        #expect(throws: CommandLineError.invalidValue(option: "tls-cert", reason: "--tls-cert and --tls-key go together")) {
            try serve(["--tls-cert", "/etc/rtcam/cert.pem"])
        }
        #expect(throws: (any Error).self) { try serve(["--https-port", "70000"]) }
        #expect(try serve(["--rtsp-port", "0"]).0.rtspPort == nil)
        #expect(try serve([]).0.rtspPort == 8554)
        #expect(throws: (any Error).self) { try serve(["--rtsp-port", "65536"]) }
    }

    @Test func everyServeOptionIsRead() throws {
        let (configuration, level) = try serve([
            "serve", "--http-port", "9000", "--http-address=127.0.0.1", "--media-port", "40000",
            "--state-dir", "/tmp/rtcam-state", "--source", "test-pattern", "--audio", "none", "--size", "640x480",
            "--fps", "25", "--bitrate", "800", "--encoder", "x264", "--max-viewers", "3",
            "--candidate-address", "10.0.0.2", "--candidate-address=192.168.1.9", "--log-level", "debug",
            "--host-name", "cam.example.net", "--host-name=kitchen.lan", "--rtsp-port", "9554",
            "--degradation", "framerate", "--intra-refresh", "on",
        ])
        #expect(configuration.overrides.degradation == .framerate)
        #expect(configuration.overrides.intraRefresh == true)
        let (defaults, _) = try serve(["serve"])
        #expect(defaults.overrides.degradation == nil && defaults.overrides.intraRefresh == nil)
        let (off, _) = try serve(["--intra-refresh", "off", "--degradation", "off"])
        #expect(off.overrides.intraRefresh == false && off.overrides.degradation == .off)
        #expect(configuration.rtspPort == 9554)
        #expect(configuration.httpPort == 9000)
        #expect(configuration.httpAddress == "127.0.0.1")
        #expect(configuration.mediaPort == 40000)
        #expect(configuration.stateDirectory == "/tmp/rtcam-state")
        #expect(configuration.overrides.video == .testPattern)
        #expect(configuration.overrides.audio == AudioSourceSetting.none)
        #expect(configuration.overrides.width == 640 && configuration.overrides.height == 480)
        #expect(configuration.overrides.framesPerSecond == 25)
        #expect(configuration.overrides.bitrateKbps == 800)
        #expect(configuration.overrides.encoder == .x264)
        #expect(configuration.overrides.maximumViewers == 3)
        #expect(configuration.candidateAddresses == ["10.0.0.2", "192.168.1.9"])
        #expect(configuration.hostNames == ["cam.example.net", "kitchen.lan"])
        #expect(level == .debug)
    }

    /// Issue 19: full ICE unless `--ice lite`; STUN servers repeatable.
    @Test func iceModeAndSTUNServers() throws {
        #expect(try serve([]).0.iceMode == .full && serve([]).0.overrides.stunServers == nil)
        #expect(try serve(["--ice", "lite"]).0.iceMode == .lite)
        let (configuration, _) = try serve(["--ice=full", "--stun", "stun.example.org:3478", "--stun", "192.0.2.1:19302"])
        #expect(configuration.iceMode == .full && configuration.overrides.stunServers == ["stun.example.org:3478", "192.0.2.1:19302"])
        #expect(error(["--ice", "half"]) == .invalidValue(option: "ice", reason: "--ice must be full or lite (got 'half')"))
    }

    /// Issue 19: a TURN server and its credentials override the saved ones for the run; without
    /// them the saved settings stand (nil overrides).
    @Test func turnServerAndCredentials() throws {
        let (configuration, _) = try serve(["--turn", "turn:turn.example.org:3478?transport=udp", "--turn-user", "cam",
                                            "--turn-password", "pw", "--turn-secret", "s3cret"])
        #expect(configuration.overrides.turnServer == "turn:turn.example.org:3478?transport=udp")
        #expect(configuration.overrides.turnUser == "cam" && configuration.overrides.turnPassword == "pw")
        #expect(configuration.overrides.turnSecret == "s3cret")
        let plain = try serve([]).0.overrides
        #expect(plain.turnServer == nil && plain.turnUser == nil && plain.turnPassword == nil && plain.turnSecret == nil)
    }

    @Test func serveIsTheDefaultSubcommand() throws {
        let (configuration, _) = try serve(["--source", "file:/tmp/a.h264", "--fps", "15"])
        #expect(configuration.overrides.video == .file(path: "/tmp/a.h264"))
        #expect(configuration.overrides.framesPerSecond == 15)
    }

    /// The settings accept only absolute file paths; a relative one from the command line made every
    /// later settings change (even the first password's viewing choice) invalid. It is made absolute.
    @Test func aRelativeFileSourceIsMadeAbsolute() throws {
        func video(_ arguments: [String], in directory: String?) throws -> VideoSourceSetting? {
            guard case let .serve(configuration, _) = try RTCamCommandLine.parse(arguments, workingDirectory: directory) else {
                return nil
            }
            return configuration.overrides.video
        }
        #expect(try video(["--source", "file:clip.h264"], in: "/srv/cam") == .file(path: "/srv/cam/clip.h264"))
        #expect(try video(["--source", "file:./media/clip.h264"], in: "/") == .file(path: "/media/clip.h264"))
        #expect(try video(["--source", "file:/abs/clip.h264"], in: "/srv") == .file(path: "/abs/clip.h264"))
        #expect(try video(["--source", "test-pattern"], in: nil) == .testPattern)
        #expect(throws: CommandLineError.self) { try video(["--source", "file:clip.h264"], in: nil) }
        var settings = CameraSettings()
        settings.media.video = try #require(try video(["--source", "file:clip.h264"], in: "/srv/cam"))
        #expect(settings.validationErrors().isEmpty)
    }

    @Test func laterOptionsWinAsSystemdAppendsRTCamOptions() throws {
        let (configuration, _) = try serve(["serve", "--state-dir", "/var/lib/rtcam", "--http-port", "80", "--state-dir", "/srv/cam",
                                            "--http-port", "8081"])
        #expect(configuration.stateDirectory == "/srv/cam")
        #expect(configuration.httpPort == 8081)
    }

    @Test func stateDirectoryComesFromSystemdWhenNotGiven() throws {
        #expect(try serve(["serve"], environment: "/var/lib/private/rtcam").0.stateDirectory == "/var/lib/private/rtcam")
        #expect(try serve(["serve", "--state-dir", "/x"], environment: "/var/lib/private/rtcam").0.stateDirectory == "/x")
        #expect(try serve(["serve"], environment: "").0.stateDirectory == "/var/lib/rtcam", "an empty $STATE_DIRECTORY is unset")
    }

    @Test func devicesAndHelp() throws {
        guard case .listDevices = try RTCamCommandLine.parse(["devices"]) else {
            Issue.record("devices")
            return
        }
        for arguments in [["--help"], ["-h"], ["help"]] {
            guard case let .showHelp(text) = try RTCamCommandLine.parse(arguments) else {
                Issue.record("\(arguments)")
                continue
            }
            #expect(text.contains("WHEP"))
            #expect(text.contains("serve (default)") && text.contains("devices"))
        }
        for arguments in [["serve", "--help"], ["help", "serve"], ["--fps", "30", "-h"], ["serve", "--source", "-h"], ["serve", "--frames", "30", "--help"], ["--fps", "0", "-h"]] {
            guard case let .showHelp(text) = try RTCamCommandLine.parse(arguments) else {
                Issue.record("\(arguments)")
                continue
            }
            for option in RTCamCommandLine.serve.options {
                #expect(text.contains("--\(option.name) <\(option.valueName)>"), "help lacks --\(option.name)")
            }
            #expect(text.contains("(default: 8080)"))
            #expect(text.split(separator: "\n").allSatisfy { $0.count <= 80 || !$0.contains(" ") },
                    "a help line wider than 80 columns:\n\(text)")
        }
        guard case let .showHelp(text) = try RTCamCommandLine.parse(["devices", "--help"]) else {
            Issue.record("devices --help")
            return
        }
        #expect(text.contains("microphones"))
    }

    @Test func badCommandLinesAreRefusedWithTheReason() {
        #expect(error(["serv"]) == .unknownSubcommand("serv"))
        #expect(error(["help", "nothing"]) == .unknownSubcommand("nothing"))
        #expect(error(["help", "serve", "junk"]) == .unexpectedArgument("junk"))
        #expect(error(["serve", "--frames", "30"]) == .unknownOption("--frames"))
        #expect(error(["serve", "-p", "30"]) == .unknownOption("-p"))
        #expect(error(["devices", "--fps", "30"]) == .unknownOption("--fps"))
        #expect(error(["serve", "--fps"]) == .missingValue(option: "fps"))
        #expect(error(["serve", "--fps", "--bitrate", "100"]) == .missingValue(option: "fps"))
        #expect(error(["serve", "stray"]) == .unexpectedArgument("stray"))
        #expect(error(["serve", "--"]) == .unknownOption("--"))
        let refusals: [([String], String)] = [
            (["--http-port", "0"], "http-port"), (["--http-port", "65536"], "http-port"), (["--http-port", "eighty"], "http-port"),
            (["--media-port", "-1"], "media-port"), (["--source", "webcam"], "source"), (["--audio", "mic"], "audio"),
            (["--size", "1280"], "size"), (["--size", "1281x720"], "size"), (["--size", "8x8"], "size"), (["--size", "x720"], "size"),
            (["--size", "1280x720x3"], "size"), (["--fps", "0"], "fps"), (["--fps", "121"], "fps"), (["--fps="], "fps"),
            (["--bitrate", "49"], "bitrate"), (["--encoder", "nvenc"], "encoder"), (["--max-viewers", "0"], "max-viewers"),
            (["--log-level", "loud"], "log-level"), (["--state-dir="], "state-dir"),
            (["--degradation", "quality"], "degradation"), (["--intra-refresh", "yes"], "intra-refresh"),
        ]
        for (arguments, option) in refusals {
            guard case let .invalidValue(refused, reason)? = error(arguments) else {
                Issue.record("\(arguments) was accepted")
                continue
            }
            #expect(refused == option)
            #expect(reason.hasPrefix("--\(option) must"), "\(reason)")
        }
    }

    @Test func errorMessagesPointAtTheHelp() {
        let message = RTCamCommandLine.errorMessage(.invalidValue(option: "fps", reason: "--fps must be 1 to 120 (got '0')"),
                                                    arguments: ["serve", "--fps", "0"])
        #expect(message == "Error: --fps must be 1 to 120 (got '0')\nSee 'rtcam serve --help' for every option.")
        #expect(RTCamCommandLine.errorMessage(.unknownOption("--x"), arguments: ["devices", "--x"])
            .hasSuffix("See 'rtcam devices --help' for every option."))
        #expect(RTCamCommandLine.errorMessage(.unknownSubcommand("serv"), arguments: ["serv"]).contains("SUBCOMMANDS:"))
    }

    @Test func helpWrapsWordsIntoColumns() {
        let lines = twoColumns([("--a <b>", String(repeating: "word ", count: 40)), ("-h, --help", "Show help.")], width: 60)
        #expect(lines.allSatisfy { $0.count <= 60 })
        // The name column is the widest name + 4 = 14 columns.
        #expect(lines[0].hasPrefix("  --a <b>     word word"))
        #expect(lines[1].hasPrefix(String(repeating: " ", count: 14) + "word"))
        #expect(lines.last == "  -h, --help  Show help.")
        let narrow = twoColumns([("--a-very-long-option-name <value>", "text")], width: 60)
        #expect(narrow == ["  --a-very-long-option-name <value>", String(repeating: " ", count: 30) + "text"])
    }
}
