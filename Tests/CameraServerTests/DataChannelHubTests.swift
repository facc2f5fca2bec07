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

/// The "rtcam" channel's commands as the page sends them, and whatever a hostile page might send.
@Suite struct CameraChannelCommandTests {
    @Test func commandsParse() throws {
        #expect(try CameraChannelCommand(parsing: #"{"type":"status"}"#) == CameraChannelCommand(id: nil, action: .status))
        #expect(try CameraChannelCommand(parsing: #"{"type":"keyframe","id":7}"#) == CameraChannelCommand(id: .number(7), action: .keyframe))
        #expect(try CameraChannelCommand(parsing: #"{"id":"a","type":"listControls"}"#) == CameraChannelCommand(id: .text("a"), action: .listControls))
        #expect(try CameraChannelCommand(parsing: #"{"type":"setBitrate","kbps":1500}"#).action == .setBitrate(kbps: 1500))
        #expect(try CameraChannelCommand(parsing: #"{"type":"setControl","control":9963776,"value":-3}"#).action
                == .setControl(id: 9_963_776, value: -3))
    }

    @Test func malformedCommandsGetAClearError() {
        let cases: [(String, CameraChannelCommand.RequestID?, String)] = [
            ("{not json", nil, "invalid JSON"),
            ("[1,2]", nil, "a JSON object"),
            (#"{"id":3}"#, .number(3), "\"type\""),
            (#"{"type":"fly","id":"x"}"#, .text("x"), "unknown command type \"fly\""),
            (#"{"type":"setBitrate","kbps":"fast","id":1}"#, .number(1), "kbps"),
            (#"{"type":"setBitrate","kbps":1.5}"#, nil, "kbps"),
            (#"{"type":"setControl","control":-1,"value":1}"#, nil, "setControl needs"),
            (#"{"type":"setControl","control":4294967296,"value":1}"#, nil, "setControl needs"),
            (#"{"type":"setControl","control":1,"value":1e300}"#, nil, "setControl needs"),
            (#"{"type":"status","id":1.5}"#, nil, "\"id\""),
            (#"{"type":"status","id":[1]}"#, nil, "\"id\""),
            (String(repeating: " ", count: 5000) + "{}", nil, "at most 4096 bytes"),
        ]
        for (text, id, message) in cases {
            #expect {
                try CameraChannelCommand(parsing: text)
            } throws: { error in
                guard let failure = error as? CameraChannelCommand.Failure else { return false }
                return failure.id == id && failure.message.contains(message)
            }
        }
    }

    @Test func randomMutationsNeverTrap() {
        var random = SeededRandom(seed: 18)
        let seeds = [#"{"type":"setControl","id":12,"control":9963776,"value":140}"#, #"{"type":"setBitrate","kbps":1500,"id":"b"}"#,
                     #"{"type":"listControls"}"#]
        let alphabet = Array(#"{}[]":,-.0123456789eE+ \"#.utf8) + [0x00, 0xFF, 0xC3, 0xA9]
        var parsed = 0, refused = 0
        // 20 s under qemu for 20,000; 4,000 there (each seed's mutations 1,333 times).
        let iterations = emulatedRounds(native: 20_000, emulated: 4_000)
        for iteration in 0..<iterations {
            var bytes = Array(seeds[iteration % seeds.count].utf8)
            for _ in 0...(random.next() % 6) {
                let position = Int(random.next() % UInt64(bytes.count + 1))
                switch random.next() % 3 {
                case 0 where position < bytes.count: bytes.remove(at: position)
                case 1: bytes.insert(alphabet[Int(random.next() % UInt64(alphabet.count))], at: position)
                default: if position < bytes.count { bytes[position] = alphabet[Int(random.next() % UInt64(alphabet.count))] }
                }
            }
            do {
                _ = try CameraChannelCommand(parsing: String(decoding: bytes, as: UTF8.self))
                parsed += 1
            } catch {
                #expect(!error.message.isEmpty)
                refused += 1
            }
        }
        #expect(parsed > iterations / 200 && refused > iterations / 20, "\(parsed) parsed, \(refused) refused")
    }
}
