import RTCBase
import Testing
@testable import SDP

/// RFC 8841: an offered data channel section is answered with rtcam's SCTP port and max-message-size,
/// bundled with the media; anything else stays rejected.
@Suite("WHEP answer: data channels (RFC 8841)")
struct DataChannelAnswerTests {
    static func chromiumWith(_ application: String, bundle: String = "a=group:BUNDLE 0 1 2") -> String {
        Fixture.text(Fixture.chromium).replacing("a=group:BUNDLE 0 1", with: bundle) + application
    }

    static let chromiumApplication = "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n"
        + "a=ice-ufrag:Qm9i\r\na=ice-pwd:7yBlWyQm8RkmqZ0aYw3ZcV0u\r\na=setup:actpass\r\na=mid:2\r\n"
        + "a=sctp-port:5000\r\na=max-message-size:262144\r\n"

    @Test func chromiumDataChannelIsAnsweredAndBundled() throws {
        let (answer, negotiated) = try WHEPAnswererTests.answer(Self.chromiumWith(Self.chromiumApplication))
        #expect(answer.bundleMids == ["0", "1", "2"])
        #expect(negotiated.bundleMids == ["0", "1", "2"])
        #expect(negotiated.video != nil && negotiated.audio != nil)
        #expect(negotiated.dataChannel == NegotiatedDataChannel(mid: "2", remoteSCTPPort: 5000, localSCTPPort: 5000,
                                                                remoteMaxMessageSize: 262_144, localMaxMessageSize: 262_144))
        let application = answer.media[2]
        #expect(application.kind == "application" && application.port != 0)
        #expect(application.proto == "UDP/DTLS/SCTP" && application.formats == ["webrtc-datachannel"])
        #expect(application.attribute(named: "sctp-port")?.value == "5000")
        #expect(application.attribute(named: "max-message-size")?.value == "262144")
        #expect(application.setup == .passive && application.hasAttribute("fingerprint") && application.hasAttribute("candidate"))
        // No RTP lines and no direction in an application section (RFC 8829 §5.3.1).
        #expect(application.direction == nil && !application.isRTCPMux && !application.hasAttribute("rtpmap"))
        let text = answer.serialized()
        #expect(text.contains("m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n") || text.contains("UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4"))
    }

    @Test func firefoxSizesAndPortsAreTaken() throws {
        // Firefox offers a 1 GiB max-message-size; 0 means no limit; absent means 64 KiB (RFC 8841 §6.1).
        for (line, expected) in [("a=max-message-size:1073741823\r\n", 1_073_741_823), ("a=max-message-size:0\r\n", Int.max),
                                 ("", 65_536)] {
            let application = "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\na=sctp-port:5001\r\n" + line
            let (_, negotiated) = try WHEPAnswererTests.answer(Self.chromiumWith(application))
            let channel = try #require(negotiated.dataChannel)
            #expect(channel.remoteMaxMessageSize == expected)
            #expect(channel.remoteSCTPPort == 5001 && channel.localSCTPPort == 5000)
        }
    }

    @Test func whatIsNotUnderstoodIsRejected() throws {
        let cases = [
            // The old draft form, another format, a bad port, a bad size, a second application section.
            "m=application 9 DTLS/SCTP 5000\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\na=sctpmap:5000 webrtc-datachannel 1024\r\n",
            "m=application 9 UDP/DTLS/SCTP something-else\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\n",
            "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\na=sctp-port:70000\r\n",
            "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\na=max-message-size:-1\r\n",
            "m=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\n",
        ]
        for application in cases {
            let (answer, negotiated) = try WHEPAnswererTests.answer(Self.chromiumWith(application))
            #expect(negotiated.dataChannel == nil, "\(application)")
            #expect(answer.media[2].port == 0 && negotiated.bundleMids == ["0", "1"], "\(application)")
            #expect(negotiated.video != nil)
        }
        // Two data channel sections: the first is served, the second rejected.
        let two = Self.chromiumWith(Self.chromiumApplication + Self.chromiumApplication.replacing("a=mid:2", with: "a=mid:3"),
                                    bundle: "a=group:BUNDLE 0 1 2 3")
        let (answer, negotiated) = try WHEPAnswererTests.answer(two)
        #expect(negotiated.dataChannel?.mid == "2" && answer.media[3].port == 0 && negotiated.bundleMids == ["0", "1", "2"])
    }

    @Test func offersWithoutOneAreAnsweredAsBefore() throws {
        var off = WHEPAnswererTests.defaultCapabilities
        off.dataChannels = false
        let text = Fixture.text(Fixture.chromium)
        let on = try WHEPAnswererTests.answer(text)
        let without = try WHEPAnswererTests.answer(text, capabilities: off)
        #expect(on.answer.serialized() == without.answer.serialized())
        #expect(on.negotiated == without.negotiated && on.negotiated.dataChannel == nil)
    }

    @Test func dataChannelOnlyOffer() throws {
        // A page that only wants status and controls: the application section is the BUNDLE tag.
        let text = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
            + "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\n"
            + "a=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 " + Array(repeating: "AB", count: 32).joined(separator: ":")
            + "\r\na=setup:actpass\r\na=mid:0\r\na=sctp-port:5000\r\na=max-message-size:262144\r\n"
        let (answer, negotiated) = try WHEPAnswererTests.answer(text)
        #expect(negotiated.video == nil && negotiated.audio == nil && negotiated.dataChannel?.mid == "0")
        #expect(answer.media.count == 1 && answer.media[0].port != 0 && negotiated.localDTLSRole == .server)
    }
}
