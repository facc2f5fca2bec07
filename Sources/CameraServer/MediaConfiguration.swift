import RTCBase

/// Where pictures come from (`--source`).
public enum VideoSourceSetting: Equatable, Sendable, CustomStringConvertible {
    /// The first V4L2 camera, else the test pattern (the embedded default).
    case automatic
    case v4l2(devicePath: String)
    case testPattern
    /// An Annex-B H.264 file looped at its frame rate (passthrough: no encoder).
    case file(path: String)
    /// A program writing Annex-B H.264 to stdout, e.g. rpicam-vid (passthrough; ExecVideoSource.swift).
    case exec(command: String)

    public init?(parsing text: String) {
        switch text {
        case "auto": self = .automatic
        case "test-pattern": self = .testPattern
        default:
            if text.hasPrefix("v4l2:"), text.count > 5 { self = .v4l2(devicePath: String(text.dropFirst(5))) }
            else if text.hasPrefix("file:"), text.count > 5 { self = .file(path: String(text.dropFirst(5))) }
            else if text.hasPrefix("exec:"), ExecCommand.isAcceptable(String(text.dropFirst(5))) {
                self = .exec(command: String(text.dropFirst(5)))
            }
            else { return nil }
        }
    }

    public var description: String {
        switch self {
        case .automatic: return "auto"
        case let .v4l2(path): return "v4l2:\(path)"
        case .testPattern: return "test-pattern"
        case let .file(path): return "file:\(path)"
        case let .exec(command): return "exec:\(command)"
        }
    }
}

/// Where sound comes from (`--audio`).
public enum AudioSourceSetting: Equatable, Sendable, CustomStringConvertible {
    case automatic
    case alsa(deviceName: String)
    case testTone
    case none

    public init?(parsing text: String) {
        switch text {
        case "auto": self = .automatic
        case "test-tone": self = .testTone
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
        case .testTone: return "test-tone"
        case .none: return "none"
        }
    }
}

/// Which H.264 encoder to use. `auto`: the camera's own H.264 when it has it, else the board's
/// V4L2 M2M encoder when there is one, else x264.
public enum EncoderPreference: String, Equatable, Sendable, CaseIterable {
    case automatic = "auto"
    case hardware
    case x264
    /// The camera's own H.264, passed through (no encoder in rtcam).
    case passthrough
}

/// Which of a V4L2 camera's pixel formats to capture (`--format`) when the encoder is x264.
/// `auto`: raw pictures (NV12, YU12, YUYV) when the camera gives them at the size and rate asked
/// for, else its MJPEG when that reaches a higher rate there (most USB webcams give 720p and 1080p
/// at 30 fps only as MJPEG: USB 2.0 cannot carry raw YUYV that fast), else raw at what it can do.
public enum CameraFormatPreference: String, Equatable, Sendable, CaseIterable {
    case automatic = "auto"
    /// Raw pictures only (the behaviour before MJPEG capture).
    case raw
    /// The camera's own JPEGs: passed through to /snapshot.jpg and /stream.mjpg, decoded for x264.
    case mjpeg
}

public struct MediaConfiguration: Equatable, Sendable {
    public var video: VideoSourceSetting = .automatic
    public var audio: AudioSourceSetting = .automatic
    public var width = 1280
    public var height = 720
    public var framesPerSecond = 30
    public var bitrateKbps = 2000
    /// Seconds between regular keyframes (viewers joining or losing packets ask for more).
    public var keyframeIntervalSeconds = 2
    public var encoder = EncoderPreference.automatic
    /// Which of a camera's pixel formats to capture for x264 (raw or MJPEG).
    public var cameraFormat = CameraFormatPreference.automatic
    /// What gives way when x264 cannot keep up on this CPU (EncoderLoadAdaptation).
    public var degradation = DegradationPreference.resolution
    /// x264's periodic intra refresh instead of periodic IDR keyframes (no keyframe burst on the
    /// link); viewers joining and PLI still get an IDR.
    public var intraRefresh = false

    public init() {}
}

/// `--source exec:COMMAND`: a program that writes Annex-B H.264 to its stdout, passed through to the
/// viewers (no encoder in rtcam). On a Raspberry Pi with a CSI camera (Camera Module 3, any camera
/// on a Pi 5), whose V4L2 nodes give raw Bayer that only libcamera turns into pictures, that program
/// is `rpicam-vid -t 0 --codec h264 --inline --flush -o -` (board READMEs).
///
/// The command runs through /bin/sh; `{width}`, `{height}`, `{fps}`, `{bitrate}` (bits/s) and
/// `{kbps}` are replaced with the settings at each start.
enum ExecCommand {
    static func expand(_ template: String, width: Int, height: Int, framesPerSecond: Int, bitrateKbps: Int) -> String {
        let values = ["width": width, "height": height, "fps": framesPerSecond, "bitrate": bitrateKbps * 1000, "kbps": bitrateKbps]
        var command = ""
        var rest = Substring(template)
        while let open = rest.firstIndex(of: "{") {
            command += rest[..<open]
            let afterOpen = rest.index(after: open)
            if let close = rest[afterOpen...].firstIndex(of: "}"), let value = values[String(rest[afterOpen ..< close])] {
                command += String(value)
                rest = rest[rest.index(after: close)...]
            } else {
                command += "{"   // not a placeholder: kept as written (a shell's ${VAR}, say)
                rest = rest[afterOpen...]
            }
        }
        return command + rest
    }

    /// Whether a new bitrate needs the program restarted to take effect.
    static func usesBitrate(_ template: String) -> Bool {
        template.containsText("{bitrate}") || template.containsText("{kbps}")
    }

    /// What the settings page and `--source` accept: one line, no NUL, at most 2,000 bytes.
    static func isAcceptable(_ command: String) -> Bool {
        !command.isEmpty && command.utf8.count <= 2000 && !command.utf8.contains(where: { $0 == 0 || $0 == 10 || $0 == 13 })
    }
}
