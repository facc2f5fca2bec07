import RTCBase
import Testing
@testable import SDP

@Suite("SDP parsing (RFC 8866)")
struct ParsingTests {
    @Test("every browser fixture parses: two bundled recvonly sections with transport parameters", arguments: Fixture.browserOffers)
    func parsesFixture(name: String) throws {
        let offer = try Fixture.offer(name)
        #expect(offer.version == 0)
        #expect(offer.media.map(\.kind) == ["video", "audio"])
        #expect(offer.media.map(\.mid) == ["0", "1"])
        #expect(offer.bundleMids == ["0", "1"])
        for section in offer.media {
            #expect(section.proto == "UDP/TLS/RTP/SAVPF")
            #expect(offer.direction(of: section) == .recvonly)
            #expect(section.isRTCPMux)
            #expect(!section.rtpMaps.isEmpty)
            #expect(section.payloadTypes.count == section.formats.count)
            let credentials = try #require(offer.iceCredentials(of: section))
            #expect(!credentials.ufrag.isEmpty && !credentials.password.isEmpty)
            let fingerprint = try #require(offer.fingerprints(of: section).first)
            #expect(fingerprint.algorithm == "sha-256" && fingerprint.bytes.count == 32)
            #expect(offer.setup(of: section) == .actpass)
        }
    }

    @Test("serializing a parsed fixture gives back the browser's exact text", arguments: Fixture.offers)
    func serializesByteForByte(name: String) throws {
        let text = Fixture.text(name)
        let offer = try SessionDescription(parsing: text)
        #expect(offer.serialized() == text)
        #expect(try SessionDescription(parsing: offer.serialized()) == offer)
    }

    @Test("\\n-only line endings parse to the same description as \\r\\n")
    func bareNewlines() throws {
        for name in Fixture.offers {
            let text = Fixture.text(name)
            let unix = text.sdpLines.joined(separator: "\n")
            #expect(!unix.utf8.contains(0x0D))
            #expect(try SessionDescription(parsing: unix) == SessionDescription(parsing: text))
        }
        // Mixed endings and no final newline.
        let mixed = "v=0\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\nt=0 0\r\nm=audio 9 RTP/AVP 0"
        let parsed = try SessionDescription(parsing: mixed)
        #expect(parsed.media.first?.formats == ["0"])
        #expect(parsed.serialized().hasSuffix("m=audio 9 RTP/AVP 0\r\n"))
    }

    @Test("Chromium typed accessors: rtpmap, fmtp, rtcp-fb, extmap, ssrc-free recvonly")
    func chromiumAccessors() throws {
        let offer = try Fixture.offer(Fixture.chromium)
        let video = offer.media[0], audio = offer.media[1]
        #expect(video.formats.count == 34)
        #expect(video.rtpMaps[108] == RTPMap(encodingName: "H264", clockRate: 90000))
        #expect(video.fmtp[108] == ["level-asymmetry-allowed": "1", "packetization-mode": "1", "profile-level-id": "42e01f"])
        #expect(video.fmtp[109] == ["apt": "108"])
        #expect(video.rtcpFeedback[108] == ["goog-remb", "transport-cc", "ccm fir", "nack", "nack pli"])
        #expect(video.rtcpFeedback[118] == nil)
        #expect(video.extmaps[RTPHeaderExtensionURI.mid] == 9)
        #expect(video.extmaps[RTPHeaderExtensionURI.absSendTime] == 2)
        #expect(video.extmaps[RTPHeaderExtensionURI.transportWideCC] == 4)
        #expect(video.isRTCPReducedSize)
        #expect(video.ssrcs.isEmpty)
        #expect(audio.rtpMaps[111] == RTPMap(encodingName: "opus", clockRate: 48000, channels: 2))
        #expect(audio.fmtp[63] == ["111/111": ""])
        #expect(audio.encodingName(payloadType: 0) == "PCMU")
        #expect(offer.hasAttribute("extmap-allow-mixed"))
        #expect(offer.origin.sessionID == "2278141679374954958")
        #expect(offer.iceUfrag == nil)  // media level only in Chromium
    }

    @Test("Firefox typed accessors: session-level fingerprint, extmap direction, ssrc, bundle-only")
    func firefoxAccessors() throws {
        let offer = try Fixture.offer(Fixture.firefox)
        let video = offer.media[0], audio = offer.media[1]
        #expect(offer.fingerprints.count == 1)
        #expect(video.fingerprints.isEmpty)
        #expect(offer.fingerprints(of: video) == offer.fingerprints)
        #expect(video.extensionMaps.contains(SDPExtensionMap(
            id: 6, direction: .recvonly, uri: "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay")))
        #expect(video.extmaps[RTPHeaderExtensionURI.mid] == 3)
        #expect(video.fmtp[97]?["packetization-mode"] == nil)  // mode 0 written by omission
        #expect(video.ssrcs.count == 1)
        #expect(video.sourceAttributes.first?.name == "cname")
        #expect(audio.rtpMaps[9] == RTPMap(encodingName: "G722", clockRate: 8000, channels: 1))
        #expect(audio.fmtp[109]?["stereo"] == "1")
        #expect(audio.fmtp[101] == ["0-15": ""])
        #expect(offer.origin.username == "mozilla...THIS_IS_SDPARTA-99.0")

        let maxBundle = try Fixture.offer(Fixture.firefoxMaxBundle)
        #expect(maxBundle.media[1].port == 0)
        #expect(maxBundle.media[1].isBundleOnly)
        #expect(maxBundle.transportSection(for: maxBundle.media[1]).mid == "0")
    }

    @Test("session-level ICE credentials and direction apply to sections without their own")
    func sessionLevelFallbacks() throws {
        let text = """
            v=0
            o=- 1 1 IN IP4 0.0.0.0
            s=-
            t=0 0
            a=ice-ufrag:sess
            a=ice-pwd:sessionpassword0123456789
            a=sendonly
            m=audio 9 UDP/TLS/RTP/SAVPF 111
            a=rtpmap:111 opus/48000/2
            m=audio 9 UDP/TLS/RTP/SAVPF 111
            a=ice-ufrag:med
            a=ice-pwd:mediapassword0123456789
            a=inactive
            a=rtpmap:111 opus/48000/2
            """
        let offer = try SessionDescription(parsing: text)
        #expect(offer.iceCredentials(of: offer.media[0])?.ufrag == "sess")
        #expect(offer.iceCredentials(of: offer.media[1])?.ufrag == "med")
        #expect(offer.direction(of: offer.media[0]) == .sendonly)
        #expect(offer.direction(of: offer.media[1]) == .inactive)
    }

    @Test("unknown line types and attributes are kept, not rejected")
    func tolerant() throws {
        let text = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\ni=info\r\nu=http://x\r\nt=0 0\r\nz=0 0\r\nx=whatever\r\n"
            + "a=something-new:with:colons\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\ni=video\r\nb=AS:2000\r\n"
            + "a=weird\r\na=rtpmap:96 H264/90000\r\ny=odd\r\n\r\n"
        let offer = try SessionDescription(parsing: text)
        #expect(offer.otherLines.map(\.type) == ["i", "u", "z", "x"])
        #expect(offer.attribute(named: "something-new")?.value == "with:colons")
        #expect(offer.media[0].bandwidths == [SDPBandwidth(type: "AS", value: 2000)])
        #expect(offer.media[0].hasAttribute("weird"))
        #expect(try SessionDescription(parsing: offer.serialized()) == offer)
    }

    static let minimalHeader = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"

    @Test("malformed lines throw .malformedLine with the line number", arguments: [
        ("m=video abc UDP/TLS/RTP/SAVPF 96", 5),
        ("m=video 70000 UDP/TLS/RTP/SAVPF 96", 5),
        ("m=video 9 UDP/TLS/RTP/SAVPF 128", 5),
        ("m=video 9 UDP/TLS/RTP/SAVPF -1", 5),
        ("m=video 9 UDP/TLS/RTP/SAVPF +96", 5),
        ("m=video 9 UDP/TLS/RTP/SAVPF", 5),
        ("m=video 9/0 UDP/TLS/RTP/SAVPF 96", 5),
        ("m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264", 6),
        ("m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:200 H264/90000", 6),
        ("m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/0", 6),
        ("m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=fmtp:x apt=1", 6),
        ("m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtcp-fb:96", 6),
        ("m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=extmap:0 urn:x", 6),
        ("m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=extmap:256 urn:x", 6),
        ("m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=extmap:3/sideways urn:x", 6),
        ("a=fingerprint:sha-256 AB:CD", 5),
        ("a=fingerprint:sha-256 ZZ:" + String(repeating: "00:", count: 30) + "00", 5),
        ("a=setup:sometimes", 5),
        ("m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ssrc:4294967296 cname:x", 6),
        ("m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:", 6),
        ("m=video 9 UDP/TLS/RTP/SAVPF 96\r\nt=0 0", 6),
        ("c=IN IP4", 5),
        ("b=AS:fast", 5),
        ("=novalue", 5),
        ("A=upper", 5),
        ("garbage", 5),
        ("a=:value", 5),
    ])
    func malformed(line: String, number: Int) {
        let text = Self.minimalHeader + line + "\r\n"
        #expect {
            _ = try SessionDescription(parsing: text)
        } throws: { error in
            guard case let .malformedLine(reported, _) = error as? SDPError else { return false }
            return reported == number
        }
    }

    @Test("structure errors: v first, o and s required, one of each")
    func structure() {
        #expect(throws: SDPError.malformedLine(number: 1, text: "o=- 1 1 IN IP4 0.0.0.0")) {
            try SessionDescription(parsing: "o=- 1 1 IN IP4 0.0.0.0\r\nv=0\r\ns=-\r\n")
        }
        #expect(throws: SDPError.malformedLine(number: 1, text: "v=1")) {
            try SessionDescription(parsing: "v=1\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\n")
        }
        #expect(throws: SDPError.missingRequiredLine("o")) { try SessionDescription(parsing: "v=0\r\ns=-\r\n") }
        #expect(throws: SDPError.missingRequiredLine("s")) { try SessionDescription(parsing: "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n") }
        #expect(throws: SDPError.missingRequiredLine("v")) { try SessionDescription(parsing: "") }
        #expect(throws: SDPError.missingRequiredLine("v")) { try SessionDescription(parsing: "\r\n\n") }
        #expect(throws: SDPError.malformedLine(number: 3, text: "o=x 2 2 IN IP4 0.0.0.0")) {
            try SessionDescription(parsing: "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\no=x 2 2 IN IP4 0.0.0.0\r\ns=-\r\n")
        }
        #expect(throws: SDPError.malformedLine(number: 2, text: "o=- x 1 IN IP4 0.0.0.0")) {
            try SessionDescription(parsing: "v=0\r\no=- x 1 IN IP4 0.0.0.0\r\ns=-\r\n")
        }
        // t= may be absent; serialization writes t=0 0.
        #expect((try? SessionDescription(parsing: "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\n"))?.timings == [SDPTiming()])
    }

    @Test("size bounds: more than 64 KiB or more than 64 m-lines are refused")
    func bounds() throws {
        let padding = String(repeating: "a=x-padding:0123456789abcdef0123456789abcdef0123456789abcdef\r\n", count: 1100)
        let large = Self.minimalHeader + padding
        #expect(large.utf8.count > SessionDescription.maximumSize)
        #expect(throws: SDPError.tooLarge(bytes: large.utf8.count)) { try SessionDescription(parsing: large) }

        let section = "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\n"
        let sixtyFour = Self.minimalHeader + String(repeating: section, count: 64)
        #expect(try SessionDescription(parsing: sixtyFour).media.count == 64)
        #expect(throws: SDPError.tooManyMediaSections(count: 65)) {
            try SessionDescription(parsing: sixtyFour + section)
        }
    }

    @Test("non-RTP sections keep token formats (data channel)")
    func application() throws {
        let offer = try SessionDescription(parsing: Self.minimalHeader
            + "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=sctp-port:5000\r\na=fmtp:webrtc-datachannel x\r\n")
        #expect(!offer.media[0].isRTP)
        #expect(offer.media[0].formats == ["webrtc-datachannel"])
        #expect(offer.media[0].payloadTypes.isEmpty)
    }

    @Test("fingerprint hex round trip")
    func fingerprintHex() throws {
        let bytes: [UInt8] = [0x00, 0x0F, 0xA0, 0xFF]
        #expect(SDPFingerprint.hexWithColons(bytes) == "00:0F:A0:FF")
        #expect(SDPFingerprint.bytes(fromHexWithColons: "00:0f:a0:FF") == bytes)
        #expect(SDPFingerprint.bytes(fromHexWithColons: "0:0F") == nil)
        #expect(SDPFingerprint.bytes(fromHexWithColons: "00::0F") == nil)
    }
}
