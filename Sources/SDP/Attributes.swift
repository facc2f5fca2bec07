// Typed views of the attributes negotiation needs. Accessors skip values they cannot read; the
// parser already rejected malformed ones for the attributes listed in SDPParser.validate.

/// a=sendrecv / sendonly / recvonly / inactive (RFC 8866 §6.7); absent means sendrecv.
public enum MediaDirection: String, Equatable, Sendable {
    case sendrecv, sendonly, recvonly, inactive
}

/// a=setup (RFC 4145 §4, RFC 8842 §5).
public enum SDPSetup: String, Equatable, Sendable {
    case actpass, active, passive, holdconn
}

/// a=fingerprint:<hash-func> <hex:hex:...> (RFC 8122 §5). `algorithm` is lower-cased.
public struct SDPFingerprint: Equatable, Sendable {
    public var algorithm: String
    public var bytes: [UInt8]

    public init(algorithm: String, bytes: [UInt8]) {
        self.algorithm = algorithm
        self.bytes = bytes
    }

    /// "sha-256 AB:CD:..." as it appears after "a=fingerprint:".
    public var sdpValue: String { algorithm + " " + SDPFingerprint.hexWithColons(bytes) }

    /// Upper-case hex pairs joined by ":" (RFC 8122 §5 recommends upper case).
    public static func hexWithColons(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 3)
        for (index, byte) in bytes.enumerated() {
            if index > 0 { out.append(0x3A) }
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses "AB:CD:..." (either case); nil if any pair is not two hex digits.
    public static func bytes(fromHexWithColons text: Substring) -> [UInt8]? {
        var out: [UInt8] = []
        for pair in text.splitASCII(0x3A, omittingEmpty: false) {
            let utf8 = Array(pair.utf8)
            guard utf8.count == 2, let high = hexValue(utf8[0]), let low = hexValue(utf8[1]) else { return nil }
            out.append(high << 4 | low)
        }
        return out
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 0x30...0x39: return byte - 0x30
        case 0x41...0x46: return byte - 0x41 + 10
        case 0x61...0x66: return byte - 0x61 + 10
        default: return nil
        }
    }
}

/// a=rtpmap:<pt> <encoding name>/<clock rate>[/<channels>] (RFC 8866 §6.6).
public struct RTPMap: Equatable, Sendable {
    public var encodingName: String
    public var clockRate: UInt32
    public var channels: Int?

    public init(encodingName: String, clockRate: UInt32, channels: Int? = nil) {
        self.encodingName = encodingName
        self.clockRate = clockRate
        self.channels = channels
    }
}

/// a=extmap:<id>[/<direction>] <uri> [<extension attributes>] (RFC 8285 §5).
public struct SDPExtensionMap: Equatable, Sendable {
    public var id: UInt8
    public var direction: MediaDirection?
    public var uri: String
    public var extensionAttributes: String?

    public init(id: UInt8, direction: MediaDirection? = nil, uri: String, extensionAttributes: String? = nil) {
        self.id = id
        self.direction = direction
        self.uri = uri
        self.extensionAttributes = extensionAttributes
    }
}

/// a=ssrc:<ssrc-id> <attribute>[:<value>] (RFC 5576 §4.1).
public struct SDPSourceAttribute: Equatable, Sendable {
    public var ssrc: UInt32
    public var name: String
    public var value: String?
}

/// a=group:<semantics> <mid> ... (RFC 5888 §5).
public struct SDPGroup: Equatable, Sendable {
    public var semantics: String
    public var mids: [String]
}

/// Header extension URIs rtcam uses (and echoes when offered).
public enum RTPHeaderExtensionURI {
    public static let mid = "urn:ietf:params:rtp-hdrext:sdes:mid"                                  // RFC 9143 §15
    public static let absSendTime = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
    public static let transportWideCC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
    /// min/max playout delay in 10 ms units; rtcam sends 0/0 (render at once).
    public static let playoutDelay = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay"
    /// The capture instant (NTP, 64 bits) on some packets: a receiver learns how old a frame is.
    public static let absCaptureTime = "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time"
    public static let supported: [String] = [mid, absSendTime, transportWideCC, playoutDelay, absCaptureTime]
}

/// The attribute grammars, shared by the parser's validation and the accessors.
enum SDPAttributeGrammar {
    static func rtpMap(_ value: String) -> (payloadType: UInt8, map: RTPMap)? {
        let parts = value.splitASCII(0x20, maxSplits: 1)
        guard parts.count == 2, let pt = parseNumber(parts[0], max: 127) else { return nil }
        let encoding = parts[1].splitASCII(0x2F, omittingEmpty: false)
        guard encoding.count == 2 || encoding.count == 3, isToken(encoding[0]),
              let clock = parseNumber(encoding[1], max: UInt64(UInt32.max)), clock > 0
        else { return nil }
        var channels: Int?
        if encoding.count == 3 {
            guard let count = parseNumber(encoding[2], max: 255), count > 0 else { return nil }
            channels = Int(count)
        }
        return (UInt8(pt), RTPMap(encodingName: String(encoding[0]), clockRate: UInt32(clock), channels: channels))
    }

    static func extensionMap(_ value: String) -> SDPExtensionMap? {
        let parts = value.splitASCII(0x20, maxSplits: 2)
        guard parts.count >= 2 else { return nil }
        let idParts = parts[0].splitASCII(0x2F, omittingEmpty: false)
        // RFC 8285 §5: 1-14 one-byte, 1-255 two-byte form (4096-4351 only in offers with extmap "negotiation").
        guard idParts.count <= 2, let id = parseNumber(idParts[0], max: 255), id >= 1 else { return nil }
        var direction: MediaDirection?
        if idParts.count == 2 {
            guard let parsed = MediaDirection(rawValue: idParts[1].asciiLowercased) else { return nil }
            direction = parsed
        }
        return SDPExtensionMap(id: UInt8(id), direction: direction, uri: String(parts[1]),
                               extensionAttributes: parts.count == 3 ? String(parts[2]) : nil)
    }

    static func fingerprint(_ value: String) -> SDPFingerprint? {
        let parts = value.splitASCII(0x20)
        guard parts.count == 2, isToken(parts[0]),
              let bytes = SDPFingerprint.bytes(fromHexWithColons: parts[1]), bytes.count <= 64
        else { return nil }
        let algorithm = parts[0].asciiLowercased
        // RFC 8122 §5: the digest length follows from the hash function.
        if algorithm == "sha-256", bytes.count != 32 { return nil }
        if algorithm == "sha-1", bytes.count != 20 { return nil }
        return SDPFingerprint(algorithm: algorithm, bytes: bytes)
    }

    static func ssrcAttribute(_ value: String) -> SDPSourceAttribute? {
        let parts = value.splitASCII(0x20, maxSplits: 1)
        guard parts.count == 2, let ssrc = parseNumber(parts[0], max: UInt64(UInt32.max)) else { return nil }
        let attribute = parts[1]
        if let colon = attribute.utf8.firstIndex(of: 0x3A) {
            return SDPSourceAttribute(ssrc: UInt32(ssrc), name: String(attribute[..<colon]),
                                      value: String(attribute[attribute.utf8.index(after: colon)...]))
        }
        return SDPSourceAttribute(ssrc: UInt32(ssrc), name: String(attribute), value: nil)
    }

    /// "a=b;c=d" → ["a": "b", "c": "d"]; keys lower-cased, a part without "=" is a key with value "".
    static func formatParameters(_ text: Substring) -> [String: String] {
        var parameters: [String: String] = [:]
        for part in text.splitASCII(0x3B) {
            let trimmed = part.trimmingSpaces
            guard !trimmed.isEmpty else { continue }
            if let equals = trimmed.utf8.firstIndex(of: 0x3D) {
                let key = trimmed[..<equals].trimmingSpaces.asciiLowercased
                parameters[key] = String(trimmed[trimmed.utf8.index(after: equals)...].trimmingSpaces)
            } else {
                parameters[String(trimmed)] = ""
            }
        }
        return parameters
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var result = self
        while let first = result.utf8.first, first == 0x20 || first == 0x09 { result = result.dropFirst() }
        while let last = result.utf8.last, last == 0x20 || last == 0x09 { result = result.dropLast() }
        return result
    }
}

extension String {
    /// ASCII case-insensitive equality with an already lower-case `lowercased` (no allocation).
    func equalsIgnoringASCIICase(_ lowercased: String) -> Bool {
        if self == lowercased { return true }
        guard utf8.count == lowercased.utf8.count else { return false }
        for (a, b) in zip(utf8, lowercased.utf8) where a != b {
            guard a >= 0x41, a <= 0x5A, a + 0x20 == b else { return false }
        }
        return true
    }
}

extension Array where Element == SDPAttribute {
    func first(named name: String) -> SDPAttribute? { first { $0.name.equalsIgnoringASCIICase(name) } }
    func values(named name: String) -> [String] {
        compactMap { $0.name.equalsIgnoringASCIICase(name) ? ($0.value ?? "") : nil }
    }
    func contains(named name: String) -> Bool { contains { $0.name.equalsIgnoringASCIICase(name) } }

    var direction: MediaDirection? {
        for attribute in self where attribute.value == nil {
            if let direction = MediaDirection(rawValue: attribute.name.asciiLowercased) { return direction }
        }
        return nil
    }

    var fingerprints: [SDPFingerprint] { values(named: "fingerprint").compactMap(SDPAttributeGrammar.fingerprint) }
    var setup: SDPSetup? { first(named: "setup")?.value.flatMap { SDPSetup(rawValue: $0.asciiLowercased) } }
    var iceUfrag: String? { first(named: "ice-ufrag")?.value.map { String(Substring($0).trimmingSpaces) } }
    var icePassword: String? { first(named: "ice-pwd")?.value.map { String(Substring($0).trimmingSpaces) } }
}

// MARK: - Media-level accessors

extension MediaDescription {
    /// RTP-based protocol (RTP/AVP, RTP/SAVPF, UDP/TLS/RTP/SAVPF, ...): formats are payload types.
    public var isRTP: Bool {
        // Looks for "RTP/" in any case without allocating (called for every attribute line while parsing).
        let bytes = Array(proto.utf8)
        guard bytes.count >= 4 else { return false }
        for start in 0...(bytes.count - 4) where bytes[start] | 0x20 == 0x72 && bytes[start + 1] | 0x20 == 0x74
            && bytes[start + 2] | 0x20 == 0x70 && bytes[start + 3] == 0x2F {
            return true
        }
        return false
    }

    public func attribute(named name: String) -> SDPAttribute? { attributes.first(named: name.asciiLowercased) }
    public func attributeValues(named name: String) -> [String] { attributes.values(named: name.asciiLowercased) }
    public func hasAttribute(_ name: String) -> Bool { attributes.contains(named: name.asciiLowercased) }

    /// a=mid (RFC 9143 §5).
    public var mid: String? { attribute(named: "mid")?.value }
    /// The explicit direction attribute of this section, if any (see `SessionDescription.direction(of:)`).
    public var direction: MediaDirection? { attributes.direction }
    public var iceUfrag: String? { attributes.iceUfrag }
    public var icePassword: String? { attributes.icePassword }
    public var fingerprints: [SDPFingerprint] { attributes.fingerprints }
    public var setup: SDPSetup? { attributes.setup }
    /// RFC 5761 §5.1.3 / RFC 8858.
    public var isRTCPMux: Bool { hasAttribute("rtcp-mux") }
    /// RFC 5506 §5.
    public var isRTCPReducedSize: Bool { hasAttribute("rtcp-rsize") }
    /// RFC 8843 §6.
    public var isBundleOnly: Bool { hasAttribute("bundle-only") }
    /// Raw a=candidate values (RFC 8839 §5.1).
    public var candidates: [String] { attributeValues(named: "candidate") }
    public var hasEndOfCandidates: Bool { hasAttribute("end-of-candidates") }

    /// The m-line's payload types, in preference order (RTP sections only).
    public var payloadTypes: [UInt8] {
        isRTP ? formats.compactMap { parseNumber($0, max: 127).map(UInt8.init) } : []
    }

    /// payload type → rtpmap (RFC 8866 §6.6).
    public var rtpMaps: [UInt8: RTPMap] {
        var maps: [UInt8: RTPMap] = [:]
        for value in attributeValues(named: "rtpmap") {
            if let (pt, map) = SDPAttributeGrammar.rtpMap(value), maps[pt] == nil { maps[pt] = map }
        }
        return maps
    }

    /// payload type → format parameters (RFC 8866 §6.15), keys lower-cased.
    public var fmtp: [UInt8: [String: String]] {
        var result: [UInt8: [String: String]] = [:]
        for value in attributeValues(named: "fmtp") {
            let parts = value.splitASCII(0x20, maxSplits: 1)
            guard let first = parts.first, let pt = parseNumber(first, max: 127) else { continue }
            let parameters = parts.count == 2 ? SDPAttributeGrammar.formatParameters(parts[1]) : [:]
            result[UInt8(pt), default: [:]].merge(parameters) { old, _ in old }
        }
        return result
    }

    /// payload type → feedback values such as "nack", "nack pli", "ccm fir" (RFC 4585 §4.2); a
    /// wildcard `a=rtcp-fb:*` applies to every payload type of the m-line.
    public var rtcpFeedback: [UInt8: [String]] {
        var result: [UInt8: [String]] = [:]
        for value in attributeValues(named: "rtcp-fb") {
            let parts = value.splitASCII(0x20, maxSplits: 1)
            guard parts.count == 2 else { continue }
            let feedback = parts[1].splitASCII(0x20)
                .map { $0.asciiLowercased }.joined(separator: " ")
            let targets: [UInt8]
            if parts[0] == "*" {
                targets = payloadTypes
            } else if let pt = parseNumber(parts[0], max: 127) {
                targets = [UInt8(pt)]
            } else {
                continue
            }
            for pt in targets where !(result[pt]?.contains(feedback) ?? false) {
                result[pt, default: []].append(feedback)
            }
        }
        return result
    }

    /// All a=extmap lines (RFC 8285 §5), in order.
    public var extensionMaps: [SDPExtensionMap] {
        attributeValues(named: "extmap").compactMap(SDPAttributeGrammar.extensionMap)
    }

    /// uri → id for the header extensions offered (first mapping of a URI wins).
    public var extmaps: [String: UInt8] {
        var result: [String: UInt8] = [:]
        for map in extensionMaps where result[map.uri] == nil { result[map.uri] = map.id }
        return result
    }

    /// Distinct SSRCs of a=ssrc lines (RFC 5576), in order of appearance.
    public var ssrcs: [UInt32] {
        var seen: [UInt32] = []
        for attribute in sourceAttributes where !seen.contains(attribute.ssrc) { seen.append(attribute.ssrc) }
        return seen
    }

    public var sourceAttributes: [SDPSourceAttribute] {
        attributeValues(named: "ssrc").compactMap(SDPAttributeGrammar.ssrcAttribute)
    }

    /// a=ssrc-group (RFC 5576 §4.2): semantics → SSRCs, e.g. ("FID", [video, rtx]).
    public var sourceGroups: [(semantics: String, ssrcs: [UInt32])] {
        attributeValues(named: "ssrc-group").compactMap { value in
            let parts = value.splitASCII(0x20)
            guard let semantics = parts.first else { return nil }
            let ssrcs = parts.dropFirst().compactMap { parseNumber($0, max: UInt64(UInt32.max)).map(UInt32.init) }
            guard ssrcs.count == parts.count - 1 else { return nil }
            return (String(semantics), ssrcs)
        }
    }

    /// The encoding name for a payload type: rtpmap, else the RFC 3551 §6 static assignment.
    public func encodingName(payloadType pt: UInt8) -> String? {
        MediaDescription.encodingName(payloadType: pt, rtpMaps: rtpMaps)
    }

    static func encodingName(payloadType pt: UInt8, rtpMaps: [UInt8: RTPMap]) -> String? {
        if let map = rtpMaps[pt] { return map.encodingName }
        switch pt {
        case 0: return "PCMU"
        case 3: return "GSM"
        case 4: return "G723"
        case 8: return "PCMA"
        case 9: return "G722"
        case 13: return "CN"
        case 18: return "G729"
        case 26: return "JPEG"
        case 31: return "H261"
        case 34: return "H263"
        default: return nil
        }
    }
}

// MARK: - Session-level accessors

extension SessionDescription {
    public func attribute(named name: String) -> SDPAttribute? { sessionAttributes.first(named: name.asciiLowercased) }
    public func attributeValues(named name: String) -> [String] { sessionAttributes.values(named: name.asciiLowercased) }
    public func hasAttribute(_ name: String) -> Bool { sessionAttributes.contains(named: name.asciiLowercased) }

    /// a=group lines (RFC 5888 §5).
    public var groups: [SDPGroup] {
        attributeValues(named: "group").compactMap { value in
            let parts = value.splitASCII(0x20)
            guard let semantics = parts.first else { return nil }
            return SDPGroup(semantics: String(semantics), mids: parts.dropFirst().map(String.init))
        }
    }

    /// The mids of the first a=group:BUNDLE (RFC 8843 §7), nil without one.
    public var bundleMids: [String]? {
        groups.first { $0.semantics.asciiLowercased == "bundle" }?.mids
    }

    /// a=ice-lite (RFC 8839 §5.3).
    public var isICELite: Bool { hasAttribute("ice-lite") }
    public var iceUfrag: String? { sessionAttributes.iceUfrag }
    public var icePassword: String? { sessionAttributes.icePassword }
    public var fingerprints: [SDPFingerprint] { sessionAttributes.fingerprints }
    public var setup: SDPSetup? { sessionAttributes.setup }
    public var direction: MediaDirection? { sessionAttributes.direction }

    public func media(withMid mid: String) -> MediaDescription? { media.first { $0.mid == mid } }

    /// RFC 8866 §6.7: a media-level direction, else the session-level one, else sendrecv.
    public func direction(of media: MediaDescription) -> MediaDirection {
        media.direction ?? direction ?? .sendrecv
    }

    /// ICE credentials for a section: media level, else session level (RFC 8839 §5.4).
    public func iceCredentials(of media: MediaDescription) -> (ufrag: String, password: String)? {
        guard let ufrag = media.iceUfrag ?? iceUfrag, let password = media.icePassword ?? icePassword,
              !ufrag.isEmpty, !password.isEmpty
        else { return nil }
        return (ufrag, password)
    }

    /// Fingerprints for a section: media level if it has any, else session level (RFC 8122 §5).
    public func fingerprints(of media: MediaDescription) -> [SDPFingerprint] {
        let mediaLevel = media.fingerprints
        return mediaLevel.isEmpty ? fingerprints : mediaLevel
    }

    /// a=setup for a section: media level, else session level.
    public func setup(of media: MediaDescription) -> SDPSetup? { media.setup ?? setup }

    /// The section whose transport serves a BUNDLE group: the offerer BUNDLE-tag, i.e. the first mid of
    /// the group (RFC 8843 §7.2.1), or `media` itself when it is not bundled.
    public func transportSection(for media: MediaDescription) -> MediaDescription {
        if let mid = media.mid, let bundle = bundleMids, bundle.contains(mid),
           let tagMid = bundle.first, let tagged = self.media(withMid: tagMid) {
            return tagged
        }
        return media
    }
}
