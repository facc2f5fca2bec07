#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import RTCBase
import Testing
@testable import SDP

/// Fixture files live in Tests/Fixtures/sdp (read with libc: no Foundation, no SwiftPM resources).
enum Fixture {
    static let offers = [
        "chromium-156-recvonly-offer.sdp",
        "firefox-esr-153-recvonly-offer.sdp",
        "firefox-esr-153-max-bundle-recvonly-offer.sdp",
        "safari-17-recvonly-offer-handwritten.sdp",
        "gstreamer-1.22-webrtcbin-max-bundle-recvonly-offer.sdp",
        "gstreamer-1.22-webrtcbin-default-policy-recvonly-offer.sdp",
    ]
    /// The browsers' offers: mids "0" and "1", BUNDLE, actpass.
    static let browserOffers = Array(offers[0..<4])
    static let chromium = offers[0]
    static let firefox = offers[1]
    static let firefoxMaxBundle = offers[2]
    static let safari = offers[3]
    /// GStreamer 1.22 webrtcbin, bundle-policy max-bundle: `m=audio 0` + `a=bundle-only`, `OPUS/48000`.
    static let webrtcbinMaxBundle = offers[4]
    /// GStreamer 1.22 webrtcbin, its default bundle-policy ("none"): no BUNDLE group, a transport per section.
    static let webrtcbinDefault = offers[5]

    static func directory(_ file: String = #filePath) -> String {
        var parts = file.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(2)  // SDPTests/<file>.swift
        return parts.joined(separator: "/") + "/Fixtures/sdp/"
    }

    static func text(_ name: String) -> String {
        guard let handle = fopen(directory() + name, "rb") else { return "" }
        defer { fclose(handle) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&buffer, 1, buffer.count, handle)
            if count <= 0 { break }
            bytes += buffer[0..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func offer(_ name: String) throws -> SessionDescription {
        let text = text(name)
        #expect(!text.isEmpty, "fixture \(name) missing")
        return try SessionDescription(parsing: text)
    }
}

let testFingerprint = "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99"

let testTransport = LocalTransport(
    iceUfrag: "rtcU", icePassword: "rtcamPasswordOf24Chars00", fingerprintSHA256: testFingerprint,
    candidates: [HostCandidate(address: TransportAddress(host: "192.0.2.10", port: 50000)!, foundation: "1"),
                 HostCandidate(address: TransportAddress(host: "2001:db8::10", port: 50000)!, foundation: "2",
                               localPreference: 65534)],
    videoSSRC: 0x1111_1111, videoRTXSSRC: 0x2222_2222, audioSSRC: 0x3333_3333,
    cname: "rtcamcname", streamID: "rtcam")

/// Text helpers for deriving offers from fixtures.
extension String {
    var sdpLines: [String] {
        // On bytes: "\r\n" is one Character, so a Character split would not see the "\n".
        utf8.split(separator: 0x0A, omittingEmptySubsequences: false).map { line in
            var bytes = Array(line)
            if bytes.last == 0x0D { bytes.removeLast() }
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    func removingLines(where predicate: (String) -> Bool) -> String {
        sdpLines.filter { !predicate($0) }.joined(separator: "\r\n")
    }

    func mappingLines(_ transform: (String) -> String) -> String {
        sdpLines.map(transform).joined(separator: "\r\n")
    }

    func replacing(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var result = ""
        var rest = self[...]
        while let range = rest.firstRange(of: target) {
            result += rest[..<range.lowerBound]
            result += replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}
