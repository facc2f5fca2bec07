import Testing
@testable import RTCBase

/// The standard-library-only string search that stands in for _StringProcessing's (Tests/check-footprint.sh).
@Suite struct TextSearchTests {
    @Test func containsTextFindsSubstringsAnywhere() {
        #expect("UDP/TLS/RTP/SAVPF".lowercased().containsText("rtp/savp"))
        #expect("video4linux capture".containsText("capture"))
        #expect("capture".containsText("capture"))
        #expect("xxcapturx capture".containsText("capture"), "a false start before the match")
        #expect("aaab".containsText("aab"), "overlapping prefixes")
        #expect(!"captur".containsText("capture"))
        #expect(!"".containsText("a"))
        #expect("anything".containsText(""))
        #expect("nack pli".containsText(Substring("nack")))
        #expect(!"café".containsText("cafe"))
        #expect("naïve café".containsText("café"))
    }

    @Test func componentsSplitAtEverySeparator() {
        #expect(Substring("fe80::1:2").components(separatedBy: "::") == ["fe80", "1:2"])
        #expect(Substring("::1").components(separatedBy: "::") == ["", "1"])
        #expect(Substring("1::").components(separatedBy: "::") == ["1", ""])
        #expect(Substring("1::2::3").components(separatedBy: "::") == ["1", "2", "3"])
        #expect(Substring(":::").components(separatedBy: "::") == ["", ":"])
        #expect(Substring("1:2:3").components(separatedBy: "::") == ["1:2:3"])
        #expect(Substring("").components(separatedBy: "::") == [""])
    }
}
