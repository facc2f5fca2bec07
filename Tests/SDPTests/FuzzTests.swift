import RTCBase
import Testing
@testable import SDP

/// Seeded mutation fuzzing: whatever the text, parsing and answering return or throw SDPError, never trap,
/// and whatever parses re-serializes to text that parses back to the same description.
@Suite("SDP robustness (seeded fuzz)")
struct FuzzTests {
    static let trickyLines = [
        "m=", "m=video", "m=video 9", "m=video 9 UDP/TLS/RTP/SAVPF", "m=video 65536 RTP/AVP 0", "m=video 9/ RTP/AVP 0",
        "m=audio 0 UDP/TLS/RTP/SAVPF 111", "a=rtpmap:", "a=rtpmap:111", "a=rtpmap:111 opus", "a=rtpmap:111 opus/",
        "a=rtpmap:111 opus/48000/0", "a=fmtp:", "a=fmtp:108", "a=fmtp:108 ;;;==;", "a=fmtp:108 profile-level-id=zzzzzz;packetization-mode=1",
        "a=fmtp:108 profile-level-id=;packetization-mode=1", "a=rtcp-fb:* nack", "a=rtcp-fb:*", "a=extmap:", "a=extmap:15 x",
        "a=extmap:1/ x", "a=fingerprint:", "a=fingerprint:sha-256", "a=fingerprint:sha-1 AB", "a=setup:", "a=setup:passive",
        "a=setup:holdconn", "a=group:BUNDLE", "a=group:BUNDLE 9 9 9", "a=group:", "a=mid:0", "a=mid:7", "a=ice-ufrag:",
        "a=ice-pwd:", "a=ice-lite", "a=bundle-only", "a=sendonly", "a=inactive", "a=ssrc:1", "a=ssrc:1 cname:",
        "a=ssrc-group:FID 1 x", "a=rtcp-mux", "a=", "a=:", "v=0", "o=", "s=", "t=", "t=0", "c=", "b=", "b=:", "x=",
        "\u{0}", "\u{FFFD}", "é=1", "a=rtpmap:108 H264/90000", "a=rtpmap:109 rtx/90000", "a=fmtp:109 apt=108",
        "a=fmtp:109 apt=", "m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "m=video 9 RTP/AVP 96 97 98",
    ]

    static let unicodeSamples: [Character] = ["\r", "\n", " ", ":", "/", "=", ";", "0", "9", "a", "é", "\u{301}", "\u{0}", "\u{1F600}"]

    static func mutate(_ text: String, random: inout SeededRandom) -> String {
        var lines = text.sdpLines
        let rounds = 1 + Int(random.next() % 4)
        for _ in 0..<rounds {
            guard !lines.isEmpty else { lines = ["v=0"]; continue }
            let index = Int(random.next() % UInt64(lines.count))
            switch random.next() % 9 {
            case 0: lines.remove(at: index)
            case 1: lines.insert(lines[index], at: Int(random.next() % UInt64(lines.count)))
            case 2: lines.swapAt(index, Int(random.next() % UInt64(lines.count)))
            case 3: lines.insert(trickyLines[Int(random.next() % UInt64(trickyLines.count))], at: index)
            case 4:  // truncate a line
                let line = Array(lines[index].utf8)
                lines[index] = String(decoding: line.prefix(Int(random.next() % UInt64(line.count + 1))), as: UTF8.self)
            case 5:  // replace one character
                var characters = Array(lines[index])
                if !characters.isEmpty {
                    characters[Int(random.next() % UInt64(characters.count))] =
                        unicodeSamples[Int(random.next() % UInt64(unicodeSamples.count))]
                }
                lines[index] = String(characters)
            case 6:  // change a number
                lines[index] = lines[index].replacing("9", with: ["0", "128", "99999999999999999999999", "-1", ""][Int(random.next() % 5)])
            case 7:  // splice random bytes into a line
                let bytes = random.bytes(Int(random.next() % 8))
                lines[index] += String(decoding: bytes, as: UTF8.self)
            default:  // cut the text short
                lines = Array(lines.prefix(index + 1))
            }
        }
        return lines.joined(separator: random.next() % 4 == 0 ? "\n" : "\r\n")
    }

    static func exercise(_ text: String) {
        do {
            let parsed = try SessionDescription(parsing: text)
            let reparsed = try? SessionDescription(parsing: parsed.serialized())
            #expect(reparsed == parsed, "round trip failed for:\n\(text)")
            // Accessors and negotiation on whatever parsed.
            for section in parsed.media {
                _ = (section.rtpMaps, section.fmtp, section.rtcpFeedback, section.extmaps, section.ssrcs, section.sourceGroups)
            }
            if let (answer, _) = try? WHEPAnswerer.answer(offer: parsed, capabilities: LocalCapabilities(), local: testTransport) {
                #expect((try? SessionDescription(parsing: answer.serialized())) == answer)
            }
        } catch {
            _ = error.description  // typed SDPError: nothing else can come out
        }
    }

    /// A fixture cut down to the payload types in `keep` (the m-line and its rtpmap/fmtp/rtcp-fb lines), so
    /// a mutation run spends its time on structure rather than on 30 copies of the same codec block.
    static func compact(_ text: String, keep: Set<String>) -> String {
        text.sdpLines.compactMap { line -> String? in
            if line.hasPrefix("m=") {
                let fields = line.split(separator: " ")
                guard fields.count > 3 else { return line }
                return (fields.prefix(3) + fields.dropFirst(3).filter { keep.contains(String($0)) }).joined(separator: " ")
            }
            for prefix in ["a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"] where line.hasPrefix(prefix) {
                let pt = line.dropFirst(prefix.count).prefix { $0 != " " }
                return keep.contains(String(pt)) ? line : nil
            }
            return line
        }.joined(separator: "\r\n")
    }

    static let mutationCorpus: [String] = [
        compact(Fixture.text(Fixture.chromium), keep: ["96", "97", "102", "103", "104", "108", "109", "111", "0"]),
        compact(Fixture.text(Fixture.firefox), keep: ["120", "124", "126", "127", "97", "109", "101"]),
        compact(Fixture.text(Fixture.firefoxMaxBundle), keep: ["126", "127", "109"]),
        compact(Fixture.text(Fixture.safari), keep: ["96", "97", "98", "99", "104", "111", "9"]),
        RecvOnlyOfferBuilder.offer(iceUfrag: "u", icePassword: "p", fingerprintSHA256: testFingerprint,
                                   h264ProfileLevelIDs: ["640c1f", "42e01f"]).serialized(),
    ]

    @Test("the compact corpus is still answerable (so mutations start from offers that negotiate)")
    func corpusIsValid() throws {
        for text in Self.mutationCorpus {
            let offer = try SessionDescription(parsing: text)
            let (_, negotiated) = try WHEPAnswerer.answer(offer: offer, capabilities: LocalCapabilities(), local: testTransport)
            #expect(negotiated.video != nil && negotiated.audio != nil)
        }
    }

    @Test("thousands of seeded line mutations of browser offers never trap")
    func lineMutations() {
        var random = SeededRandom(seed: 0x5D9)
        for iteration in 0..<2000 {
            Self.exercise(Self.mutate(Self.mutationCorpus[iteration % Self.mutationCorpus.count], random: &random))
        }
    }

    @Test("mutations of the full Chromium offer never trap")
    func fullChromiumMutations() {
        var random = SeededRandom(seed: 156)
        let text = Fixture.text(Fixture.chromium)
        for _ in 0..<100 { Self.exercise(Self.mutate(text, random: &random)) }
    }

    @Test("random bytes decoded as UTF-8, with and without a valid header, never trap")
    func randomBytes() {
        var random = SeededRandom(seed: 42)
        let header = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
        // 14 s under qemu for 1500; 300 still alternate with and without the header.
        for iteration in 0..<emulatedRounds(native: 1500, emulated: 300) {
            let bytes = random.bytes(Int(random.next() % 300))
            let body = String(decoding: bytes, as: UTF8.self)
            Self.exercise(iteration % 2 == 0 ? body : header + body)
        }
    }

    @Test("every prefix of an offer (truncated in transit) never traps")
    func truncations() {
        let bytes = Array(Self.mutationCorpus[1].utf8)
        for length in stride(from: 0, through: bytes.count, by: 3) {
            Self.exercise(String(decoding: bytes.prefix(length), as: UTF8.self))
        }
    }
}
