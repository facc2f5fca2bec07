import Testing
@testable import SDP

/// WHEP PATCH bodies (RFC 8840 §9 trickle-ice-sdpfrag).
@Suite struct TrickleICEFragmentTests {
    @Test("trickled candidates and end-of-candidates, CRLF or LF, other lines passed over")
    func trickle() throws {
        let text = "a=ice-options:trickle\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n"
            + "a=candidate:1 1 udp 2130706431 192.0.2.1 5000 typ host\na=end-of-candidates\r\n"
        let fragment = try TrickleICEFragment(parsing: text)
        #expect(fragment.candidates == ["1 1 udp 2130706431 192.0.2.1 5000 typ host"])
        #expect(fragment.endOfCandidates)
        #expect(try fragment.restartCredentials() == nil)
    }

    @Test("an ICE restart names both credentials; one alone is an error")
    func restart() throws {
        let both = try TrickleICEFragment(parsing: "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n")
        let credentials = try #require(try both.restartCredentials())
        #expect(credentials.ufrag == "abcd" && credentials.password == "0123456789012345678901")
        #expect(throws: SDPError.missingICECredentials) { try TrickleICEFragment(parsing: "a=ice-ufrag:abcd\r\n").restartCredentials() }
        #expect(throws: SDPError.missingICECredentials) { try TrickleICEFragment(parsing: "a=ice-pwd:0123456789012345678901").restartCredentials() }
    }

    @Test("larger than an offer may be: refused before it is read")
    func tooLarge() {
        let huge = String(repeating: "a=candidate:x\r\n", count: TrickleICEFragment.maximumSize / 10)
        #expect(throws: SDPError.tooLarge(bytes: huge.utf8.count)) { try TrickleICEFragment(parsing: huge) }
    }
}
