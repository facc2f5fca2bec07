import RTCBase
import Testing
@testable import SDP

/// Talkback (issue 17): a viewer's sendrecv audio is answered sendrecv only by a camera with a speaker.
@Suite("WHEP answer with talkback")
struct TalkbackAnswerTests {
    static let speaker = LocalCapabilities(h264ProfileLevelIDs: ["42e01f"], speaker: true)

    /// Chromium's offer with its audio transceiver sendrecv (the viewer page's), video recvonly.
    static var audioSendRecvOffer: String {
        var seen = 0
        return Fixture.text(Fixture.chromium).mappingLines { line in
            guard line == "a=recvonly" else { return line }
            seen += 1
            return seen == 2 ? "a=sendrecv" : line
        }
    }

    @Test func sendrecvAudioIsAnsweredSendrecvWhenTheCameraHasASpeaker() throws {
        let (answer, negotiated) = try WHEPAnswererTests.answer(Self.audioSendRecvOffer, capabilities: Self.speaker)
        #expect(answer.media[0].direction == .sendonly)
        #expect(answer.media[1].direction == .sendrecv)
        #expect(negotiated.audio?.receive == true)
        // rtcam still sends its own audio on it.
        #expect(answer.media[1].hasAttribute("msid") && !answer.media[1].ssrcs.isEmpty)
        // And tells the talker it decodes in-band FEC (RFC 7587 §6.1), so the browser sends it.
        #expect(answer.serialized().contains("a=fmtp:111 minptime=10;useinbandfec=1"))
    }

    @Test func withoutASpeakerOrForARecvonlyOfferNothingChanges() throws {
        let noSpeaker = try WHEPAnswererTests.answer(Self.audioSendRecvOffer,
                                                     capabilities: LocalCapabilities(h264ProfileLevelIDs: ["42e01f"]))
        #expect(noSpeaker.answer.media[1].direction == .sendonly)
        #expect(noSpeaker.negotiated.audio?.receive == false)

        let recvonly = try WHEPAnswererTests.answer(Fixture.text(Fixture.chromium), capabilities: Self.speaker)
        #expect(recvonly.answer.media.allSatisfy { $0.direction == .sendonly })
        #expect(recvonly.negotiated.audio?.receive == false)

        // Video is never received, whatever the offer says.
        let bothSendRecv = try WHEPAnswererTests.answer(Fixture.text(Fixture.chromium).replacing("a=recvonly", with: "a=sendrecv"),
                                                        capabilities: Self.speaker)
        #expect(bothSendRecv.answer.media[0].direction == .sendonly)
        #expect(bothSendRecv.answer.media[1].direction == .sendrecv)
    }
}
