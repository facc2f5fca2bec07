import RTCBase
import Testing
@testable import SDP

/// What the answer to each browser fixture must negotiate.
struct BrowserExpectation: Sendable, CustomStringConvertible {
    var fixture: String
    var videoPT: UInt8
    var rtxPT: UInt8
    var profileLevelID: String
    var videoExtensions: [String: UInt8]
    var opusPT: UInt8
    var audioExtensions: [String: UInt8]
    var stereo: Bool
    var description: String { fixture }
}

private let mid = RTPHeaderExtensionURI.mid, abs = RTPHeaderExtensionURI.absSendTime, twcc = RTPHeaderExtensionURI.transportWideCC,
    playout = RTPHeaderExtensionURI.playoutDelay

@Suite("WHEP offer → answer")
struct WHEPAnswererTests {
    static let browsers = [
        BrowserExpectation(fixture: Fixture.chromium, videoPT: 108, rtxPT: 109, profileLevelID: "42e01f",
                           videoExtensions: [mid: 9, abs: 2, twcc: 4, playout: 5], opusPT: 111,
                           audioExtensions: [mid: 9, abs: 2, twcc: 4], stereo: false),
        BrowserExpectation(fixture: Fixture.firefox, videoPT: 126, rtxPT: 127, profileLevelID: "42e01f",
                           videoExtensions: [mid: 3, abs: 4, twcc: 7, playout: 6], opusPT: 109,
                           audioExtensions: [mid: 3, twcc: 7], stereo: true),
        BrowserExpectation(fixture: Fixture.firefoxMaxBundle, videoPT: 126, rtxPT: 127, profileLevelID: "42e01f",
                           videoExtensions: [mid: 3, abs: 4, twcc: 7, playout: 6], opusPT: 109,
                           audioExtensions: [mid: 3, twcc: 7], stereo: true),
        BrowserExpectation(fixture: Fixture.safari, videoPT: 98, rtxPT: 99, profileLevelID: "42e01f",
                           videoExtensions: [mid: 9, abs: 2, twcc: 4, playout: 5], opusPT: 111,
                           audioExtensions: [mid: 9, abs: 2, twcc: 4], stereo: false),
    ]

    static let defaultCapabilities = LocalCapabilities(h264ProfileLevelIDs: ["42e01f", "42001f", "4d001f", "640c1f"])

    static func answer(_ text: String, capabilities: LocalCapabilities = defaultCapabilities) throws(SDPError)
        -> (answer: SessionDescription, negotiated: NegotiatedSession)
    {
        try WHEPAnswerer.answer(offer: try SessionDescription(parsing: text), capabilities: capabilities, local: testTransport)
    }

    @Test("each browser offer negotiates H.264 42e01f + RTX, Opus, feedback, extension ids, DTLS server", arguments: browsers)
    func negotiates(expected: BrowserExpectation) throws {
        let offer = try Fixture.offer(expected.fixture)
        let (_, negotiated) = try WHEPAnswerer.answer(offer: offer, capabilities: Self.defaultCapabilities, local: testTransport)
        let video = try #require(negotiated.video)
        #expect(video.mid == "0")
        #expect(video.payloadType == expected.videoPT)
        #expect(video.rtxPayloadType == expected.rtxPT)
        #expect(video.profileLevelID == expected.profileLevelID)
        #expect(video.sendProfileLevelID == expected.profileLevelID)
        #expect(video.nack && video.pli && video.fir && video.remb && video.transportCC)
        #expect(video.extensionIDs == expected.videoExtensions)
        let audio = try #require(negotiated.audio)
        #expect(audio.mid == "1")
        #expect(audio.payloadType == expected.opusPT)
        #expect(audio.useInbandFEC)
        #expect(audio.stereo == expected.stereo)
        #expect(audio.transportCC)
        #expect(audio.extensionIDs == expected.audioExtensions)

        let transport = offer.media[0]
        #expect(negotiated.remoteICEUfrag == transport.iceUfrag)
        #expect(negotiated.remoteICEPassword == transport.icePassword)
        #expect(negotiated.remoteFingerprintSHA256 == offer.fingerprints(of: transport).first?.bytes)
        #expect(negotiated.localDTLSRole == .server)
        #expect(negotiated.bundleMids == ["0", "1"])
        #expect(negotiated.rtcpReducedSize == transport.isRTCPReducedSize)
    }

    @Test("the answer text has everything a browser needs and re-parses to the same description", arguments: browsers)
    func answerText(expected: BrowserExpectation) throws {
        let (answer, _) = try Self.answer(Fixture.text(expected.fixture))
        let text = answer.serialized()
        #expect(try SessionDescription(parsing: text) == answer)
        let lines = text.sdpLines
        let pt = expected.videoPT, rtx = expected.rtxPT
        for required in [
            "v=0", "s=-", "t=0 0", "a=ice-lite", "a=group:BUNDLE 0 1",
            "m=video 50000 UDP/TLS/RTP/SAVPF \(pt) \(rtx)", "c=IN IP4 192.0.2.10",
            "m=audio 50000 UDP/TLS/RTP/SAVPF \(expected.opusPT)",
            "a=mid:0", "a=mid:1", "a=ice-ufrag:rtcU", "a=ice-pwd:rtcamPasswordOf24Chars00",
            "a=fingerprint:sha-256 \(testFingerprint)", "a=setup:passive", "a=sendonly", "a=rtcp-mux",
            "a=msid:rtcam rtcam-video", "a=msid:rtcam rtcam-audio",
            "a=rtpmap:\(pt) H264/90000",
            "a=fmtp:\(pt) level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=\(expected.profileLevelID)",
            "a=rtpmap:\(rtx) rtx/90000", "a=fmtp:\(rtx) apt=\(pt)",
            "a=rtcp-fb:\(pt) nack", "a=rtcp-fb:\(pt) nack pli", "a=rtcp-fb:\(pt) ccm fir",
            "a=rtcp-fb:\(pt) goog-remb", "a=rtcp-fb:\(pt) transport-cc",
            "a=rtpmap:\(expected.opusPT) opus/48000/2", "a=fmtp:\(expected.opusPT) minptime=10;useinbandfec=1",
            "a=rtcp-fb:\(expected.opusPT) transport-cc",
            "a=ssrc-group:FID 286331153 572662306",
            "a=ssrc:286331153 cname:rtcamcname", "a=ssrc:572662306 cname:rtcamcname", "a=ssrc:858993459 cname:rtcamcname",
            "a=candidate:1 1 udp 2130706431 192.0.2.10 50000 typ host",
            "a=candidate:2 1 udp 2130706175 2001:db8::10 50000 typ host",
            "a=end-of-candidates",
        ] {
            #expect(lines.contains(required), "answer lacks \(required)")
        }
        for (uri, id) in expected.videoExtensions {
            // Firefox offers playout-delay recvonly: answered sendonly.
            #expect(lines.contains("a=extmap:\(id) \(uri)") || lines.contains("a=extmap:\(id)/sendonly \(uri)"))
        }
        // Only what we support is echoed.
        #expect(!text.contains("VP8") && !text.contains("VP9") && !text.contains("AV1"))
        #expect(!text.contains("ssrc-audio-level") && !text.contains("toffset"))
        // Offered by every browser here; answered so the camera can ask for no playout delay.
        #expect(text.contains("playout-delay"))
        #expect(!text.contains("a=recvonly") && !text.contains("ice-options"))
        #expect(lines.filter { $0 == "a=end-of-candidates" }.count == 2)
        // Transport-level attributes only once per section.
        #expect(lines.filter { $0.hasPrefix("a=setup:") }.count == 2)
        #expect(answer.isICELite && answer.media.allSatisfy { $0.isRTCPMux })
        #expect(answer.media.allSatisfy { $0.port == 50000 })
        #expect(answer.media[0].rtcpFeedback[pt]?.count == 5)
        #expect(answer.media[0].sourceGroups.first?.ssrcs == [0x1111_1111, 0x2222_2222])
    }

    @Test("local profile preference picks among the offered ones", arguments: [
        (Fixture.chromium, ["640c1f", "42e01f"], UInt8(108), UInt8(109), "42e01f"),  // Chromium has no High
        (Fixture.chromium, ["4d001f", "42e01f"], 116, 117, "4d001f"),
        (Fixture.chromium, ["42001f"], 102, 103, "42001f"),
        (Fixture.chromium, ["f4001f"], 41, 42, "f4001f"),
        (Fixture.firefox, ["42001f", "42e01f"], 105, 106, "42001f"),
        (Fixture.firefox, ["640c1f", "4d001f", "42e01f"], 126, 127, "42e01f"),
        (Fixture.safari, ["640c1f", "42e01f"], 96, 97, "640c1f"),
        (Fixture.safari, ["42e01f", "640c1f"], 98, 99, "42e01f"),
        (Fixture.safari, ["42c01f"], 98, 99, "42e01f"),  // same class: answer with the offer's bytes
    ])
    func preference(fixture: String, profiles: [String], pt: UInt8, rtx: UInt8, profileLevelID: String) throws {
        let (_, negotiated) = try Self.answer(Fixture.text(fixture), capabilities: LocalCapabilities(h264ProfileLevelIDs: profiles))
        let video = try #require(negotiated.video)
        #expect(video.payloadType == pt)
        #expect(video.rtxPayloadType == rtx)
        #expect(video.profileLevelID == profileLevelID)
    }

    @Test("levels: ours when level asymmetry is allowed, else min(offered, ours); the send level never exceeds the offer")
    func levels() throws {
        // Safari on iOS offers level 5.2.
        let ios = Fixture.text(Fixture.safari).replacing("profile-level-id=640c1f", with: "profile-level-id=640c34")
            .replacing("profile-level-id=42e01f", with: "profile-level-id=42e034")
        var video = try #require(try Self.answer(ios, capabilities: LocalCapabilities(h264ProfileLevelIDs: ["42e01f"])).negotiated.video)
        #expect(video.payloadType == 98)
        #expect(video.profileLevelID == "42e01f")
        #expect(video.sendProfileLevelID == "42e01f")
        video = try #require(try Self.answer(ios, capabilities: LocalCapabilities(h264ProfileLevelIDs: ["640c28"])).negotiated.video)
        #expect(video.profileLevelID == "640c28")

        // A low-level offer: with asymmetry the answer states our level, the stream stays at the offer's.
        let low = Fixture.text(Fixture.safari).replacing("profile-level-id=42e01f", with: "profile-level-id=42e00b")
        video = try #require(try Self.answer(low, capabilities: LocalCapabilities(h264ProfileLevelIDs: ["42e01f"])).negotiated.video)
        #expect(video.profileLevelID == "42e01f")
        #expect(video.sendProfileLevelID == "42e00b")
        let strict = low.replacing("level-asymmetry-allowed=1;", with: "")
        let (answer, negotiated) = try Self.answer(strict, capabilities: LocalCapabilities(h264ProfileLevelIDs: ["42e01f"]))
        #expect(negotiated.video?.profileLevelID == "42e00b")
        #expect(negotiated.video?.sendProfileLevelID == "42e00b")
        #expect(answer.serialized().contains("profile-level-id=42e00b"))
    }

    @Test("setup matrix (RFC 8842 §5.2): actpass → passive/server, passive → active/client, active → passive/server", arguments: [
        ("actpass", "passive", DTLSSetupRole.server),
        ("passive", "active", .client),
        ("active", "passive", .server),
        ("ACTPASS", "passive", .server),
        (nil, "passive", .server),  // absent: the offerer is active (RFC 4145 §4)
    ] as [(String?, String, DTLSSetupRole)])
    func setupMatrix(offered: String?, answered: String, role: DTLSSetupRole) throws {
        let text = Fixture.text(Fixture.chromium).mappingLines { line in
            guard line == "a=setup:actpass" else { return line }
            return offered.map { "a=setup:" + $0 } ?? "a=x-removed"
        }
        let (answer, negotiated) = try Self.answer(text)
        #expect(negotiated.localDTLSRole == role)
        #expect(answer.media.allSatisfy { $0.setup?.rawValue == answered })
    }

    @Test("setup:holdconn is refused")
    func holdconn() {
        let text = Fixture.text(Fixture.chromium).replacing("a=setup:actpass", with: "a=setup:holdconn")
        #expect(throws: SDPError.unsupportedSetupRole("holdconn")) { try Self.answer(text) }
    }

    static let vp8Only = """
        v=0
        o=- 1 2 IN IP4 127.0.0.1
        s=-
        t=0 0
        a=group:BUNDLE 0
        m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 45
        c=IN IP4 0.0.0.0
        a=ice-ufrag:abcd
        a=ice-pwd:abcdefghijklmnopqrstuvwx
        a=fingerprint:sha-256 \(testFingerprint)
        a=setup:actpass
        a=mid:0
        a=recvonly
        a=rtcp-mux
        a=rtpmap:96 VP8/90000
        a=rtpmap:97 rtx/90000
        a=fmtp:97 apt=96
        a=rtpmap:98 VP9/90000
        a=rtpmap:99 rtx/90000
        a=fmtp:99 apt=98
        a=rtpmap:45 AV1/90000
        """

    @Test("no usable H.264 → noCommonCodec listing the offered video codecs")
    func noCommonVideoCodec() {
        #expect(throws: SDPError.noCommonCodec(offered: ["VP8", "VP9", "AV1"])) { try Self.answer(Self.vp8Only) }
        // Chromium with H.264 only in packetization-mode 0: H264 is named too, once; rtx/red/ulpfec/flexfec are not.
        let modeZero = Fixture.text(Fixture.chromium).replacing("packetization-mode=1", with: "packetization-mode=0")
        #expect(throws: SDPError.noCommonCodec(offered: ["VP8", "VP9", "H264", "AV1"])) { try Self.answer(modeZero) }
        // Firefox, whose mode-0 entries omit the parameter.
        let firefox = Fixture.text(Fixture.firefox).replacing(";packetization-mode=1", with: "")
        #expect(throws: SDPError.noCommonCodec(offered: ["VP8", "VP9", "H264", "AV1"])) { try Self.answer(firefox) }
        // H.264 in a profile we cannot produce.
        #expect(throws: SDPError.noCommonCodec(offered: ["VP8", "VP9", "H264", "AV1"])) {
            try Self.answer(Fixture.text(Fixture.chromium), capabilities: LocalCapabilities(h264ProfileLevelIDs: ["640c1f"]))
        }
    }

    @Test("neither usable audio nor video → noCommonCodec with every offered codec name")
    func nothingUsable() {
        let audioOnly = Fixture.text(Fixture.chromium).removingLines { $0.hasPrefix("a=rtpmap:111 ") }
            .replacing("a=group:BUNDLE 0 1", with: "a=group:BUNDLE 1")
        #expect(throws: SDPError.noCommonCodec(offered: ["VP8", "VP9", "H264", "AV1", "G722", "PCMU", "PCMA"])) {
            try Self.answer(audioOnly, capabilities: LocalCapabilities(video: false))
        }
        #expect(throws: SDPError.noCommonCodec(offered: ["VP8", "VP9", "H264", "AV1", "opus", "G722", "PCMU", "PCMA"])) {
            try Self.answer(Fixture.text(Fixture.chromium), capabilities: LocalCapabilities(audio: false, video: false))
        }
    }

    @Test("video not wanted by the camera: the video section is rejected, audio still answered")
    func audioOnlyCamera() throws {
        let (answer, negotiated) = try Self.answer(Fixture.text(Fixture.chromium), capabilities: LocalCapabilities(video: false))
        #expect(negotiated.video == nil)
        #expect(negotiated.audio?.payloadType == 111)
        #expect(answer.media[0].port == 0)
        #expect(answer.bundleMids == ["1"])
        #expect(negotiated.bundleMids == ["1"])
        // The bundle transport is still the offerer's tagged section (mid 0).
        #expect(negotiated.remoteICEUfrag == "dUPr")
    }

    @Test("transport errors: missing ICE credentials, missing fingerprint, non-sha-256 only, no rtcp-mux")
    func transportErrors() throws {
        let chromium = Fixture.text(Fixture.chromium)
        #expect(throws: SDPError.missingICECredentials) { try Self.answer(chromium.removingLines { $0.hasPrefix("a=ice-ufrag") }) }
        #expect(throws: SDPError.missingICECredentials) { try Self.answer(chromium.removingLines { $0.hasPrefix("a=ice-pwd") }) }
        #expect(throws: SDPError.missingFingerprint(mid: "0")) {
            try Self.answer(chromium.removingLines { $0.hasPrefix("a=fingerprint") })
        }
        #expect(throws: SDPError.missingFingerprint(mid: "0")) {
            try Self.answer(Fixture.text(Fixture.firefox).removingLines { $0.hasPrefix("a=fingerprint") })
        }
        let sha1 = "a=fingerprint:sha-1 " + SDPFingerprint.hexWithColons([UInt8](repeating: 0xAB, count: 20))
        #expect(throws: SDPError.unsupportedFingerprintAlgorithm("sha-1")) {
            try Self.answer(chromium.mappingLines { $0.hasPrefix("a=fingerprint") ? sha1 : $0 })
        }
        let sha512 = "a=fingerprint:SHA-512 " + SDPFingerprint.hexWithColons([UInt8](repeating: 0xCD, count: 64))
        #expect(throws: SDPError.unsupportedFingerprintAlgorithm("sha-512")) {
            try Self.answer(chromium.mappingLines { $0.hasPrefix("a=fingerprint") ? sha512 : $0 })
        }
        // sha-256 among several (RFC 8122 §5 allows multiple): the sha-256 one is used.
        let both = chromium.mappingLines { $0.hasPrefix("a=fingerprint") ? sha512 + "\r\n" + $0 : $0 }
        #expect(try Self.answer(both).negotiated.remoteFingerprintSHA256.first == 0x11)
        #expect(throws: SDPError.notRTCPMux) { try Self.answer(chromium.removingLines { $0 == "a=rtcp-mux" }) }
    }

    @Test("directions: sendonly/inactive offers are answered inactive and nothing is sent")
    func directions() throws {
        let chromium = Fixture.text(Fixture.chromium)
        var seen = 0
        let videoSendOnly = chromium.mappingLines { line in
            guard line == "a=recvonly" else { return line }
            seen += 1
            return seen == 1 ? "a=sendonly" : line
        }
        let (answer, negotiated) = try Self.answer(videoSendOnly)
        #expect(negotiated.video == nil)
        #expect(negotiated.audio != nil)
        #expect(answer.media[0].direction == .inactive)
        #expect(answer.media[0].port != 0)
        #expect(answer.media[0].ssrcs.isEmpty && !answer.media[0].hasAttribute("msid"))
        #expect(answer.media[1].direction == .sendonly)

        let sendrecv = chromium.replacing("a=recvonly", with: "a=sendrecv")
        let both = try Self.answer(sendrecv)
        #expect(both.answer.media.allSatisfy { $0.direction == .sendonly })
        #expect(both.negotiated.video != nil && both.negotiated.audio != nil)

        let inactive = try Self.answer(chromium.replacing("a=recvonly", with: "a=inactive"))
        #expect(inactive.negotiated.video == nil && inactive.negotiated.audio == nil)
        #expect(inactive.answer.media.allSatisfy { $0.direction == .inactive })

        // No direction attribute: sendrecv (RFC 8866 §6.7).
        let implicit = try Self.answer(chromium.removingLines { $0 == "a=recvonly" })
        #expect(implicit.negotiated.video != nil)
    }

    @Test("a data channel section is rejected with port 0 and left out of BUNDLE when data channels are off")
    func dataChannelRejected() throws {
        let text = Fixture.text(Fixture.chromium).replacing("a=group:BUNDLE 0 1", with: "a=group:BUNDLE 0 1 2")
            + "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\na=sctp-port:5000\r\n"
        var capabilities = Self.defaultCapabilities
        capabilities.dataChannels = false
        let (answer, negotiated) = try Self.answer(text, capabilities: capabilities)
        #expect(negotiated.dataChannel == nil)
        #expect(answer.media.count == 3)
        #expect(answer.media[2].port == 0)
        #expect(answer.media[2].kind == "application")
        #expect(answer.media[2].mid == "2")
        #expect(answer.media[2].formats == ["webrtc-datachannel"])
        #expect(answer.bundleMids == ["0", "1"])
        #expect(negotiated.bundleMids == ["0", "1"])
        #expect(answer.serialized().contains("m=application 0 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\n"))
        // What a parser needs of every section, rejected or not (webrtcbin: a fingerprint), and no RTP lines.
        let rejected = answer.media[2]
        #expect(rejected.hasAttribute("fingerprint") && rejected.iceUfrag == "rtcU" && rejected.setup == .passive)
        #expect(rejected.direction == .inactive && !rejected.isRTCPMux && !rejected.hasAttribute("candidate"))
    }

    @Test("a second video section and a section outside BUNDLE are rejected")
    func extraSections() throws {
        let chromium = Fixture.text(Fixture.chromium)
        let secondVideo = chromium.replacing("a=group:BUNDLE 0 1", with: "a=group:BUNDLE 0 1 2")
            + "m=video 9 UDP/TLS/RTP/SAVPF 108\r\na=mid:2\r\na=recvonly\r\na=rtcp-mux\r\na=rtpmap:108 H264/90000\r\n"
            + "a=fmtp:108 packetization-mode=1;profile-level-id=42e01f\r\n"
        let (answer, _) = try Self.answer(secondVideo)
        #expect(answer.media.map(\.port) == [50000, 50000, 0])
        let outside = try Self.answer(chromium.replacing("a=group:BUNDLE 0 1", with: "a=group:BUNDLE 0"))
        #expect(outside.answer.media.map(\.port) == [50000, 0])
        #expect(outside.negotiated.audio == nil)
    }

    @Test("without BUNDLE: the video section is served on the session's one transport, the others rejected")
    func withoutBundle() throws {
        let chromium = Fixture.text(Fixture.chromium).removingLines { $0.hasPrefix("a=group:BUNDLE") }
        for capabilities in [Self.defaultCapabilities, LocalCapabilities(audio: false)] {
            let (answer, negotiated) = try Self.answer(chromium, capabilities: capabilities)
            #expect(negotiated.bundleMids.isEmpty)
            #expect(answer.bundleMids == nil)
            #expect(negotiated.video?.payloadType == 108)
            #expect(negotiated.audio == nil)
            #expect(answer.media.map(\.port) == [50000, 0])
        }
        // A camera without video serves the audio section alone.
        let (answer, negotiated) = try Self.answer(chromium, capabilities: LocalCapabilities(video: false))
        #expect(negotiated.video == nil && negotiated.audio?.payloadType == 111)
        #expect(answer.media.map(\.port) == [0, 50000])
    }

    @Test("GStreamer webrtcbin max-bundle: the bundle-only audio section is accepted into the group (RFC 8843 §7.3)")
    func webrtcbinMaxBundle() throws {
        let offer = try Fixture.offer(Fixture.webrtcbinMaxBundle)
        #expect(offer.media[1].port == 0 && offer.media[1].isBundleOnly)
        let (answer, negotiated) = try WHEPAnswerer.answer(offer: offer, capabilities: Self.defaultCapabilities, local: testTransport)
        let video = try #require(negotiated.video)
        #expect(video.mid == "video0" && video.payloadType == 102 && video.rtxPayloadType == nil)
        // It offers "nack pli" and "ccm fir" but not plain "nack" (webrtcbin's do-nack is off by default).
        #expect(video.profileLevelID == "42e01f" && !video.nack && video.pli && video.fir && video.transportCC && !video.remb)
        let audio = try #require(negotiated.audio)
        #expect(audio.mid == "audio1" && audio.payloadType == 111 && audio.transportCC)
        #expect(negotiated.bundleMids == ["video0", "audio1"])
        #expect(negotiated.localDTLSRole == .server)  // it offers setup:active
        #expect(negotiated.remoteICEUfrag == "f1ialvUfLINMIkmGsxbA+9Iz8AJWoWBI")
        let text = answer.serialized()
        let lines = text.sdpLines
        #expect(lines.contains("a=group:BUNDLE video0 audio1"))
        #expect(lines.contains("m=audio 50000 UDP/TLS/RTP/SAVPF 111"))
        #expect(lines.contains("a=rtpmap:111 opus/48000/2"))
        #expect(!text.contains("bundle-only"))  // RFC 8843 §7.3: never in an answer
        // webrtcbin refuses an answer in which any section lacks a fingerprint.
        #expect(lines.filter { $0.hasPrefix("a=fingerprint:sha-256 ") }.count == 2)
        #expect(answer.media.allSatisfy { $0.direction == .sendonly && $0.setup == .passive })
    }

    @Test("GStreamer webrtcbin default policy (no BUNDLE): video served, audio rejected with its transport lines")
    func webrtcbinDefaultPolicy() throws {
        let (answer, negotiated) = try Self.answer(Fixture.text(Fixture.webrtcbinDefault))
        #expect(negotiated.video?.mid == "video0" && negotiated.video?.payloadType == 102)
        #expect(negotiated.audio == nil)
        #expect(negotiated.bundleMids.isEmpty && answer.bundleMids == nil)
        #expect(negotiated.remoteICEUfrag == "2oVfDyhNiDIVoNu6fcf/NbHHzSxpf4cQ")  // the video section's own
        #expect(answer.media.map(\.port) == [50000, 0])
        let rejected = answer.media[1]
        #expect(rejected.kind == "audio" && rejected.mid == "audio1" && rejected.formats == ["111"])
        #expect(rejected.direction == .inactive)
        #expect(rejected.hasAttribute("fingerprint") && rejected.iceUfrag == "rtcU" && rejected.setup == .passive)
        #expect(!rejected.isRTCPMux && rejected.ssrcs.isEmpty && !rejected.hasAttribute("candidate"))
    }

    @Test("Opus: a channel count of 2 or none (webrtcbin's OPUS/48000) is taken, 1 is not")
    func opusChannels() throws {
        let chromium = Fixture.text(Fixture.chromium)
        let noCount = try Self.answer(chromium.replacing("a=rtpmap:111 opus/48000/2", with: "a=rtpmap:111 OPUS/48000"))
        #expect(noCount.negotiated.audio?.payloadType == 111)
        #expect(noCount.answer.serialized().sdpLines.contains("a=rtpmap:111 opus/48000/2"))
        let mono = try Self.answer(chromium.replacing("a=rtpmap:111 opus/48000/2", with: "a=rtpmap:111 opus/48000/1"))
        #expect(mono.negotiated.audio?.payloadType != 111)
    }

    @Test("an offer without RTX gets no rtx payload type and no FID group")
    func withoutRTX() throws {
        let text = Fixture.text(Fixture.chromium).removingLines { $0 == "a=fmtp:109 apt=108" }
        let (answer, negotiated) = try Self.answer(text)
        #expect(negotiated.video?.rtxPayloadType == nil)
        #expect(answer.media[0].formats == ["108"])
        #expect(answer.media[0].sourceGroups.isEmpty)
        #expect(answer.media[0].ssrcs == [0x1111_1111])
    }

    @Test("feedback and extensions are echoed only when offered; recvonly extmaps are answered sendonly")
    func echoOnlyOffered() throws {
        let text = Fixture.text(Fixture.chromium)
            .removingLines { $0 == "a=rtcp-fb:108 goog-remb" || $0 == "a=rtcp-fb:108 ccm fir" || $0 == "a=rtcp-rsize" }
            .removingLines { $0.contains("abs-send-time") }
            .replacing("a=extmap:9 urn:ietf:params:rtp-hdrext:sdes:mid", with: "a=extmap:9/recvonly urn:ietf:params:rtp-hdrext:sdes:mid")
            .replacing("a=extmap:4 http://www.ietf.org", with: "a=extmap:4/sendonly http://www.ietf.org")
        let (answer, negotiated) = try Self.answer(text)
        let video = try #require(negotiated.video)
        #expect(video.nack && video.pli && video.transportCC)
        #expect(!video.fir && !video.remb)
        #expect(video.extensionIDs == [mid: 9, playout: 5])
        #expect(!negotiated.rtcpReducedSize)
        let serialized = answer.serialized()
        #expect(serialized.contains("a=extmap:9/sendonly urn:ietf:params:rtp-hdrext:sdes:mid"))
        #expect(!serialized.contains("rtcp-rsize") && !serialized.contains("goog-remb") && !serialized.contains("ccm fir"))
    }

    @Test("wildcard rtcp-fb applies to the chosen payload type")
    func wildcardFeedback() throws {
        let text = Self.vp8Only.replacing("a=rtpmap:45 AV1/90000", with: "a=rtpmap:45 H264/90000\na=fmtp:45 packetization-mode=1\na=rtcp-fb:* nack\na=rtcp-fb:* nack pli")
        let (_, negotiated) = try Self.answer(text)
        let video = try #require(negotiated.video)
        #expect(video.payloadType == 45)
        #expect(video.profileLevelID == "42e01f")  // absent profile-level-id read as libwebrtc does
        #expect(video.nack && video.pli && !video.fir)
    }

    @Test("no candidates: m= port 9 and c=IN IP4 0.0.0.0; IPv6 first candidate gives c=IN IP6")
    func defaultDestination() throws {
        var local = testTransport
        local.candidates = []
        let offer = try Fixture.offer(Fixture.chromium)
        let (answer, _) = try WHEPAnswerer.answer(offer: offer, capabilities: LocalCapabilities(), local: local)
        #expect(answer.media[0].port == 9)
        #expect(answer.media[0].connection == SDPConnection())
        local.candidates = [HostCandidate(address: TransportAddress(host: "::1", port: 4000)!)]
        let v6 = try WHEPAnswerer.answer(offer: offer, capabilities: LocalCapabilities(), local: local).answer
        #expect(v6.media[0].connection == SDPConnection(addressType: "IP6", address: "::1"))
        #expect(v6.media[0].port == 4000)
    }

    @Test("host candidate priority follows RFC 8445 §5.1.2.1")
    func priority() {
        #expect(HostCandidate.hostPriority(localPreference: 65535) == 2_130_706_431)
        #expect(HostCandidate.hostPriority(localPreference: 0) == (126 << 24) + 255)
    }
}
