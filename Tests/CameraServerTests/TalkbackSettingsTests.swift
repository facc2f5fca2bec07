import Logging
import RTCBase
import Testing
@testable import CameraServer

/// Talkback's settings (issue 17): the saved and API form, validation, the speaker `auto` picks,
/// and the floor as the talk endpoint sees it.
@Suite struct TalkbackSettingsTests {
    @Test func settingsRoundTripAndAreValidated() throws {
        let base = CameraSettings()
        #expect(base.talkback == TalkbackSettings())
        #expect(base.talkback.speaker == .automatic && base.talkback.volumePercent == 100)
        #expect(base.talkback.whoMayTalk == .viewers && base.talkback.echo == .halfDuplex)
        let updated = try base.applying(JSONValue(parsing:
            #"{"speaker": "alsa:plughw:1,0", "speakerVolume": 40, "whoMayTalk": "owner", "echo": "cancel"}"#))
        #expect(updated.talkback.speaker == .alsa(deviceName: "plughw:1,0"))
        #expect(updated.talkback.volumePercent == 40 && updated.talkback.whoMayTalk == .owner && updated.talkback.echo == .cancel)
        let json = updated.json()
        #expect(json.contains(#""speaker":"alsa:plughw:1,0""#) && json.contains(#""speakerVolume":40"#))
        #expect(json.contains(#""whoMayTalk":"owner""#) && json.contains(#""echo":"cancel""#))
        #expect(try base.applying(JSONValue(parsing: json)) == updated)
        for bad in [#"{"speaker": "hw:0"}"#, #"{"whoMayTalk": "anyone"}"#, #"{"echo": "maybe"}"#, #"{"speakerVolume": "loud"}"#] {
            #expect(throws: CameraSettings.InvalidField.self) { try base.applying(JSONValue(parsing: bad)) }
        }
        let tooLoud = try base.applying(JSONValue(parsing: #"{"speakerVolume": 101}"#))
        #expect(tooLoud.validationErrors().contains { $0.field == "speakerVolume" })
    }

    @Test func autoPicksTheFirstPlaybackDevice() {
        let table = """
            00-00: bcm2835 HDMI 1 : bcm2835 HDMI 1 : playback 8
            01-00: USB Audio : USB Audio : playback 1 : capture 1
            02-00: I2S mic : I2S mic : capture 1
            """
        let speakers = DeviceListing.speakers(procTable: table)
        #expect(speakers.map(\.source) == ["alsa:plughw:0,0", "alsa:plughw:1,0"])
        #expect(DeviceListing.speakers(procTable: nil).isEmpty)

        let logger = Logger(label: "test")
        let none = TalkbackController(settings: TalkbackSettings(), logger: logger, gate: MicrophoneGate(), speakers: { [] })
        #expect(!none.hasSpeaker)
        #expect(none.claim(viewer: "a", now: MonotonicTime(seconds: 1)) == .noSpeaker)
        let found = TalkbackController(settings: TalkbackSettings(), logger: logger, gate: MicrophoneGate(),
                                       speakers: { DeviceListing.speakers(procTable: table) })
        #expect(found.status().speaker == "plughw:0,0")
        #expect(found.claim(viewer: "a", now: MonotonicTime(seconds: 1)) == .granted)
        #expect(found.claim(viewer: "b", now: MonotonicTime(seconds: 2)) == .busy)
        found.viewerLeft("a")
        #expect(found.claim(viewer: "b", now: MonotonicTime(seconds: 3)) == .granted)
    }
}
