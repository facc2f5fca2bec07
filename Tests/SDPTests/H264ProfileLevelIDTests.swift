import Testing
@testable import SDP

@Suite("H.264 profile-level-id (RFC 6184 §8.1)")
struct H264ProfileLevelIDTests {
    @Test("classification of the ids Chromium, Firefox and Safari offer", arguments: [
        ("42001f", H264Profile.baseline),            // Chromium, Firefox
        ("42e01f", .constrainedBaseline),            // everyone
        ("42c01f", .constrainedBaseline),            // set0+set1
        ("42401f", .constrainedBaseline),            // set1 only
        ("42801f", .baseline),                       // set0 only (older Firefox)
        ("42e034", .constrainedBaseline),            // Safari iOS
        ("4d001f", .main),                           // Chromium
        ("4d0034", .main),
        ("4de01f", .constrainedBaseline),            // Main with set0: Baseline-conformant
        ("4d401f", .main),
        ("58c01f", .constrainedBaseline),
        ("58801f", .baseline),
        ("640c1f", .constrainedHigh),                // Safari
        ("640c34", .constrainedHigh),
        ("64001f", .high),
        ("f4001f", .predictiveHigh444),              // Chromium
        ("F4001F", .predictiveHigh444),              // hex is case-insensitive
    ])
    func classify(id: String, profile: H264Profile) throws {
        let parsed = try #require(H264ProfileLevelID(id))
        #expect(parsed.profile == profile)
    }

    @Test("ids that are not a WebRTC profile or not a level are refused", arguments: [
        "", "42e0", "42e01f00", "zze01f", "42e0 f", "42e00f" /* level 1.5 does not exist */, "42e101" /* set5? no: low nibble */,
        "4d201f" /* Extended-conformant Main */, "64081f", "6e001f" /* High 10 */, "7a001f", "f4011f", "58001f", "42e0ff",
    ])
    func invalid(id: String) {
        #expect(H264ProfileLevelID(id) == nil)
    }

    @Test("levels order with 1b between 1 and 1.1")
    func levelOrder() throws {
        let ids = ["42e00a", "42f00b", "42e00b", "42e01f", "42e034"].compactMap(H264ProfileLevelID.init)
        #expect(ids.count == 5)
        #expect(ids.map(\.levelOrder) == ids.map(\.levelOrder).sorted())
        #expect(try #require(H264ProfileLevelID("42f00b")).isLevel1b)
        #expect(try #require(H264ProfileLevelID("640c09")).isLevel1b)
        #expect(try !#require(H264ProfileLevelID("640c0b")).isLevel1b)
    }

    @Test("changing the level keeps the profile bytes and encodes 1b per profile")
    func withLevel() throws {
        let cb = try #require(H264ProfileLevelID("42e034"))
        #expect(cb.withLevel(of: try #require(H264ProfileLevelID("42e01f"))).description == "42e01f")
        #expect(cb.withLevel(of: try #require(H264ProfileLevelID("640c09"))).description == "42f00b")
        let ch = try #require(H264ProfileLevelID("640c34"))
        #expect(ch.withLevel(of: try #require(H264ProfileLevelID("42f00b"))).description == "640c09")
        #expect(try #require(H264ProfileLevelID("42f00b")).withLevel(of: cb).description == "42e034")
    }
}
