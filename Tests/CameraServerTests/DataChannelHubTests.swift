@testable import CameraServer
import RTCBase
import SDP
import Testing
import V4L2

@Suite struct DataChannelHubTests {
    @Test("POST /whep with a data channel section: the hub's answer carries it, bundled, with rtcam's SCTP port and size")
    func answerWithDataChannel() throws {
        let fixture = StreamHubTests.Fixture()
        let offer = StreamHubTests.offer().replacing("a=group:BUNDLE 0 1", with: "a=group:BUNDLE 0 1 2")
            + "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\na=sctp-port:5000\r\n"
            + "a=max-message-size:262144\r\n"
        let (_, text) = try fixture.hub.createSession(offer: offer)
        let answer = try SessionDescription(parsing: text)
        #expect(answer.bundleMids == ["0", "1", "2"])
        #expect(answer.media[2].port != 0 && answer.media[2].attribute(named: "sctp-port")?.value == "5000")
        #expect(answer.media[2].attribute(named: "max-message-size")?.value == "262144")
        // Without one, as before.
        let (_, plain) = try fixture.hub.createSession(offer: StreamHubTests.offer(ufrag: "vwr2"))
        #expect(!plain.contains("m=application") && !plain.contains("sctp"))
    }

    @Test("the controls list as the channel sends it: every field, menus with their entries")
    func controlsJSON() throws {
        let controls = [
            V4L2ControlInfo(id: 0x0098_0900, name: "Brightness", kind: .integer, minimum: 0, maximum: 255, step: 1,
                            defaultValue: 128, value: 140, readOnly: false, menu: []),
            V4L2ControlInfo(id: 0x009A_0901, name: "Auto \"Exposure\"", kind: .menu, minimum: 0, maximum: 1, step: 1,
                            defaultValue: 0, value: 1, readOnly: false, menu: [(0, "Auto"), (1, "Manual")]),
        ]
        let parsed = try JSONValue(parsing: CameraChannelControls.json(controls))
        guard case let .array(items) = parsed else { Issue.record("not an array"); return }
        #expect(items.count == 2)
        #expect(items[0]["id"]?.intValue == 0x0098_0900 && items[0]["name"]?.stringValue == "Brightness")
        #expect(items[0]["type"]?.stringValue == "integer" && items[0]["max"]?.intValue == 255 && items[0]["value"]?.intValue == 140)
        #expect(items[0]["menu"] == nil && items[0]["readOnly"]?.boolValue == false)
        #expect(items[1]["name"]?.stringValue == "Auto \"Exposure\"" && items[1]["type"]?.stringValue == "menu")
        guard case let .array(menu)? = items[1]["menu"] else { Issue.record("no menu"); return }
        #expect(menu.count == 2 && menu[1]["name"]?.stringValue == "Manual" && menu[1]["index"]?.intValue == 1)
        #expect(controls[0].accepts(0) && controls[0].accepts(255) && !controls[0].accepts(256))
    }
}
