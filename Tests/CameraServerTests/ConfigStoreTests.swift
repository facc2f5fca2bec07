#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import CameraServer

@Suite struct ConfigStoreTests {
    @Test func aConfigurationSavedBeforeTheKeyExistedNowProtectsViewing() throws {
        let directory = TemporaryDirectory()
        directory.write("config.json", #"{"width": 640, "height": 480}"#)
        #expect(ConfigStore(directory: directory.path, defaults: CameraSettings()).settings.viewingRequiresPassword)
        directory.write("config.json", #"{"viewingRequiresPassword": false}"#)
        #expect(!ConfigStore(directory: directory.path, defaults: CameraSettings()).settings.viewingRequiresPassword)
        #expect(CameraSettings().viewingRequiresPassword)
    }

    @Test func stateFilesGoThroughAFreshTemporaryFileThatIsNeverFollowed() throws {
        let directory = TemporaryDirectory()
        // A symlink planted at the old fixed temporary name is not followed (nor is any other name).
        _ = symlink(directory.path + "/victim", directory.path + "/config.json.tmp")
        try StateFiles.writeAtomically(directory.path + "/config.json", contents: "{}\n")
        #expect(!directory.exists("victim"))
        #expect(directory.read("config.json") == "{}\n")
        #expect(directory.names() == ["config.json", "config.json.tmp"])
    }

    @Test func missingFileMeansDefaultsWithoutComplaint() {
        let directory = TemporaryDirectory()
        let store = ConfigStore(directory: directory.path, defaults: CameraSettings())
        #expect(store.settings == CameraSettings())
        #expect(store.loadProblem == nil)
    }

    @Test func savesAtomicallyAndLoadsBack() throws {
        let directory = TemporaryDirectory()
        let store = ConfigStore(directory: directory.path, defaults: CameraSettings())
        var settings = CameraSettings()
        settings.media.width = 640
        settings.media.height = 480
        settings.media.bitrateKbps = 900
        settings.media.video = .v4l2(devicePath: "/dev/video2")
        settings.viewingRequiresPassword = false
        try store.save(settings)
        #expect(directory.names() == ["config.json"], "no temporary file is left behind")
        let reloaded = ConfigStore(directory: directory.path, defaults: CameraSettings())
        #expect(reloaded.settings == settings)
        #expect(reloaded.loadProblem == nil)
    }

    @Test(arguments: ["{not json", "{\"width\": \"wide\"}", "{\"width\": 7}", "{\"colour\": 1}", "[1,2]", ""])
    func corruptFileLeavesDefaultsSaysWhyAndIsKept(_ contents: String) throws {
        let directory = TemporaryDirectory()
        directory.write("config.json", contents)
        let store = ConfigStore(directory: directory.path, defaults: CameraSettings())
        #expect(store.settings == CameraSettings())
        let problem = try #require(store.loadProblem)
        #expect(problem.contains("config.json"))
        #expect(problem.contains("using the defaults"))
        // The next save keeps the damaged file beside the new one instead of losing it.
        var settings = CameraSettings()
        settings.media.bitrateKbps = 700
        try store.save(settings)
        #expect(directory.read("config.json.corrupt") == contents)
        #expect(ConfigStore(directory: directory.path, defaults: CameraSettings()).settings == settings)
        #expect(store.loadProblem == nil)
    }

    @Test func saveIntoAMissingDirectoryFailsAndKeepsTheOldSettings() {
        let store = ConfigStore(directory: "/nonexistent-rtcam-dir", defaults: CameraSettings())
        var settings = CameraSettings()
        settings.media.bitrateKbps = 700
        #expect(throws: (any Error).self) { try store.save(settings) }
        #expect(store.settings == CameraSettings())
    }
}

@Suite struct CameraSettingsTests {
    @Test func appliesPartialUpdatesAndRefusesUnknownOrBadFields() throws {
        let base = CameraSettings()
        let updated = try base.applying(JSONValue(parsing: #"{"bitrateKbps": 1500, "source": "test-pattern", "audio": "none"}"#))
        #expect(updated.media.bitrateKbps == 1500)
        #expect(updated.media.video == .testPattern)
        #expect(updated.media.audio == AudioSourceSetting.none)
        #expect(updated.media.width == base.media.width)
        #expect(throws: CameraSettings.InvalidField.self) { try base.applying(JSONValue(parsing: #"{"bitrate": 1}"#)) }
        #expect(throws: CameraSettings.InvalidField.self) { try base.applying(JSONValue(parsing: #"{"fps": 29.97}"#)) }
        #expect(throws: CameraSettings.InvalidField.self) { try base.applying(JSONValue(parsing: #"{"source": "webcam"}"#)) }
        #expect(throws: CameraSettings.InvalidField.self) { try base.applying(JSONValue(parsing: #"{"encoder": "gpu"}"#)) }
        #expect(base.media.degradation == .resolution && !base.media.intraRefresh)
        let adapted = try base.applying(JSONValue(parsing: #"{"degradation": "balanced", "intraRefresh": true}"#))
        #expect(adapted.media.degradation == .balanced && adapted.media.intraRefresh)
        #expect(throws: CameraSettings.InvalidField.self) { try base.applying(JSONValue(parsing: #"{"degradation": "fast"}"#)) }
        #expect(throws: CameraSettings.InvalidField.self) { try base.applying(JSONValue(parsing: #"{"intraRefresh": 1}"#)) }
    }

    @Test func validatesRanges() {
        var settings = CameraSettings()
        #expect(settings.validationErrors().isEmpty)
        settings.media.width = 641
        settings.media.framesPerSecond = 0
        settings.media.bitrateKbps = 10
        settings.maximumViewers = 0
        settings.media.video = .v4l2(devicePath: "video0")
        #expect(Set(settings.validationErrors().map(\.field)) == ["width", "fps", "bitrateKbps", "maxViewers", "source"])
    }

    @Test func jsonRoundTrips() throws {
        var settings = CameraSettings()
        settings.media.video = .file(path: "/srv/clip.h264")
        settings.media.audio = .alsa(deviceName: "hw:1,0")
        settings.media.encoder = .x264
        settings.media.degradation = .framerate
        settings.media.intraRefresh = true
        let parsed = try CameraSettings().applying(JSONValue(parsing: settings.json()))
        #expect(parsed == settings)
    }
}
