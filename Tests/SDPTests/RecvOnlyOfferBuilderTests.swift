import RTCBase
import Testing
@testable import SDP

@Suite("RecvOnlyOfferBuilder")
struct RecvOnlyOfferBuilderTests {
    static let offer = RecvOnlyOfferBuilder.offer(
        iceUfrag: "view", icePassword: "viewerPasswordOf24Chars0", fingerprintSHA256: testFingerprint,
        h264ProfileLevelIDs: ["640c1f", "42e01f"])

    @Test("the offer looks like a browser's: BUNDLE 0 1, video then audio, recvonly, rtcp-mux/rsize, actpass")
    func shape() throws {
        let offer = Self.offer
        #expect(offer.bundleMids == ["0", "1"])
        #expect(offer.media.map(\.kind) == ["video", "audio"])
        #expect(offer.media.map(\.formats) == [["96", "97", "98", "99"], ["111"]])
        for section in offer.media {
            #expect(section.direction == .recvonly)
            #expect(section.isRTCPMux && section.isRTCPReducedSize)
            #expect(section.setup == .actpass)
            #expect(section.iceUfrag == "view" && section.icePassword == "viewerPasswordOf24Chars0")
            #expect(section.fingerprints.first?.algorithm == "sha-256")
            #expect(section.fingerprints.first?.bytes.count == 32)
            #expect(section.extmaps == RecvOnlyOfferBuilder.extensionIDs)
        }
        let video = offer.media[0]
        #expect(video.fmtp[96]?["profile-level-id"] == "640c1f")
        #expect(video.fmtp[98]?["packetization-mode"] == "1")
        #expect(video.fmtp[97] == ["apt": "96"])
        #expect(video.rtcpFeedback[98] == ["nack", "nack pli", "ccm fir", "transport-cc"])
        #expect(offer.media[1].fmtp[111]?["useinbandfec"] == "1")
        // Text round trip.
        #expect(try SessionDescription(parsing: offer.serialized()) == offer)
    }

    @Test("rtcam answers the builder's offer; the viewer's side of the negotiation lines up")
    func answered() throws {
        let (answer, negotiated) = try WHEPAnswerer.answer(
            offer: Self.offer, capabilities: LocalCapabilities(h264ProfileLevelIDs: ["42e01f"]), local: testTransport)
        let video = try #require(negotiated.video)
        #expect(video.payloadType == 98 && video.rtxPayloadType == 99 && video.profileLevelID == "42e01f")
        #expect(video.nack && video.pli && video.fir && video.transportCC && !video.remb)
        #expect(video.extensionIDs == RecvOnlyOfferBuilder.extensionIDs)
        #expect(negotiated.audio?.payloadType == 111)
        #expect(negotiated.remoteICEUfrag == "view")
        #expect(negotiated.localDTLSRole == .server)
        #expect(negotiated.rtcpReducedSize)
        // The viewer reads rtcam's side from the answer.
        let reparsed = try SessionDescription(parsing: answer.serialized())
        #expect(reparsed.isICELite)
        #expect(reparsed.iceCredentials(of: reparsed.media[0])?.ufrag == "rtcU")
        #expect(reparsed.media[0].setup == .passive)
        #expect(reparsed.media[0].candidates.count == 2)
    }

    @Test("options: no audio, no video, candidates, many profiles never collide with Opus 111")
    func options() throws {
        let videoOnly = RecvOnlyOfferBuilder.offer(iceUfrag: "a", icePassword: "b", fingerprintSHA256: testFingerprint, audio: false)
        #expect(videoOnly.media.map(\.kind) == ["video"])
        #expect(videoOnly.bundleMids == ["0"])
        let audioOnly = RecvOnlyOfferBuilder.offer(iceUfrag: "a", icePassword: "b", fingerprintSHA256: testFingerprint,
                                                   h264ProfileLevelIDs: [])
        #expect(audioOnly.media.map(\.kind) == ["audio"])
        #expect(audioOnly.media[0].mid == "0")

        let many = RecvOnlyOfferBuilder.offer(iceUfrag: "a", icePassword: "b", fingerprintSHA256: testFingerprint,
                                              h264ProfileLevelIDs: Array(repeating: "42e01f", count: 20),
                                              candidates: [HostCandidate(address: TransportAddress(host: "127.0.0.1", port: 9999)!)])
        let formats = many.media[0].formats
        #expect(formats.count == 30)  // 15 pairs fit in 96...127 without 111
        #expect(!formats.contains("111"))
        #expect(Set(formats).count == formats.count)
        #expect(many.media[0].candidates == ["1 1 udp 2130706431 127.0.0.1 9999 typ host"])
        #expect(many.media[0].hasEndOfCandidates)
        #expect(try SessionDescription(parsing: many.serialized()) == many)
    }
}
