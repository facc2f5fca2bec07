// SDP model and parser: RFC 8866 (SDP), with the attribute grammars of RFC 8839 (ICE), RFC 8122
// (fingerprint), RFC 4145 (setup), RFC 8285 (extmap), RFC 4585 (rtcp-fb), RFC 5576 (ssrc).

/// One SDP attribute line: `a=name` (property) or `a=name:value` (RFC 8866 §5.13).
public struct SDPAttribute: Equatable, Sendable {
    public var name: String
    public var value: String?

    public init(_ name: String, _ value: String? = nil) {
        self.name = name
        self.value = value
    }

    public init(name: String, value: String?) { self.init(name, value) }
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>` (RFC 8866 §5.2).
public struct SDPOrigin: Equatable, Sendable {
    public var username: String
    public var sessionID: String
    public var sessionVersion: String
    public var networkType: String
    public var addressType: String
    public var address: String

    public init(username: String = "-", sessionID: String, sessionVersion: String = "1",
                networkType: String = "IN", addressType: String = "IP4", address: String = "0.0.0.0") {
        self.username = username
        self.sessionID = sessionID
        self.sessionVersion = sessionVersion
        self.networkType = networkType
        self.addressType = addressType
        self.address = address
    }
}

/// `c=<nettype> <addrtype> <connection-address>` (RFC 8866 §5.7).
public struct SDPConnection: Equatable, Sendable {
    public var networkType: String
    public var addressType: String
    public var address: String

    public init(networkType: String = "IN", addressType: String = "IP4", address: String = "0.0.0.0") {
        self.networkType = networkType
        self.addressType = addressType
        self.address = address
    }
}

/// `b=<bwtype>:<bandwidth>` (RFC 8866 §5.8); kbit/s for AS and CT, bit/s for TIAS (RFC 3890).
public struct SDPBandwidth: Equatable, Sendable {
    public var type: String
    public var value: UInt64

    public init(type: String, value: UInt64) {
        self.type = type
        self.value = value
    }
}

/// `t=<start-time> <stop-time>` (RFC 8866 §5.9); WebRTC always uses `t=0 0`.
public struct SDPTiming: Equatable, Sendable {
    public var start: UInt64
    public var stop: UInt64

    public init(start: UInt64 = 0, stop: UInt64 = 0) {
        self.start = start
        self.stop = stop
    }
}

/// A line this model keeps without interpreting (i=, u=, e=, p=, r=, z=, k= and unknown letters), so a
/// description survives a parse/serialize round trip.
public struct SDPLine: Equatable, Sendable {
    public var type: String  // one letter
    public var value: String

    public init(type: String, value: String) {
        self.type = type
        self.value = value
    }
}

/// One m= section with its lines (RFC 8866 §5.14).
public struct MediaDescription: Equatable, Sendable {
    /// "audio", "video", "application", ...
    public var kind: String
    public var port: UInt16
    /// The optional `/<number of ports>` of the m-line.
    public var portCount: Int?
    /// "UDP/TLS/RTP/SAVPF", "UDP/DTLS/SCTP", ...
    public var proto: String
    /// Payload type numbers as text for RTP protocols, format names otherwise.
    public var formats: [String]
    public var connection: SDPConnection?
    public var bandwidths: [SDPBandwidth]
    public var attributes: [SDPAttribute]
    public var otherLines: [SDPLine]

    public init(kind: String, port: UInt16, portCount: Int? = nil, proto: String, formats: [String],
                connection: SDPConnection? = nil, bandwidths: [SDPBandwidth] = [],
                attributes: [SDPAttribute] = [], otherLines: [SDPLine] = []) {
        self.kind = kind
        self.port = port
        self.portCount = portCount
        self.proto = proto
        self.formats = formats
        self.connection = connection
        self.bandwidths = bandwidths
        self.attributes = attributes
        self.otherLines = otherLines
    }
}

/// A whole session description: session-level lines and the media sections in order.
public struct SessionDescription: Equatable, Sendable {
    /// Offers larger than this are refused before any parsing (WHEP bodies are 3-8 KiB in practice).
    public static let maximumSize = 64 * 1024
    /// More m-lines than this are refused (a browser offer has 1-3).
    public static let maximumMediaSections = 64

    public var version: Int
    public var origin: SDPOrigin
    public var sessionName: String
    public var connection: SDPConnection?
    public var bandwidths: [SDPBandwidth]
    public var timings: [SDPTiming]
    public var sessionAttributes: [SDPAttribute]
    public var otherLines: [SDPLine]
    public var media: [MediaDescription]

    public init(origin: SDPOrigin, sessionName: String = "-", connection: SDPConnection? = nil,
                bandwidths: [SDPBandwidth] = [], timings: [SDPTiming] = [SDPTiming()],
                sessionAttributes: [SDPAttribute] = [], otherLines: [SDPLine] = [],
                media: [MediaDescription] = []) {
        self.version = 0
        self.origin = origin
        self.sessionName = sessionName
        self.connection = connection
        self.bandwidths = bandwidths
        self.timings = timings
        self.sessionAttributes = sessionAttributes
        self.otherLines = otherLines
        self.media = media
    }

    /// Parses SDP text with `\r\n` or `\n` line endings (RFC 8866 §5: "a parser SHOULD accept \n").
    /// Unknown line types and attributes are kept; what rtcam relies on (the v/o/s/c/b/t/m grammar,
    /// ports, payload types, and the rtpmap/fmtp/rtcp-fb/extmap/fingerprint/setup/ssrc attribute
    /// grammars) is checked, and a violation throws `.malformedLine` with its 1-based number.
    public init(parsing text: String) throws(SDPError) {
        var parser = SDPParser()
        self = try parser.parse(Array(text.utf8))
    }
}

// MARK: - Parser

struct SDPParser {
    private var lineNumber = 0
    private var currentLine: ArraySlice<UInt8> = []

    mutating func parse(_ bytes: [UInt8]) throws(SDPError) -> SessionDescription {
        guard bytes.count <= SessionDescription.maximumSize else { throw .tooLarge(bytes: bytes.count) }

        var session = SessionDescription(origin: SDPOrigin(sessionID: "0"), timings: [])
        var sawVersion = false, sawOrigin = false, sawName = false
        var mediaCount = 0
        var currentMediaIsRTP = false

        var lineStart = 0
        var index = 0
        while lineStart < bytes.count {
            index = lineStart
            while index < bytes.count, bytes[index] != 0x0A { index += 1 }
            var lineEnd = index
            if lineEnd > lineStart, bytes[lineEnd - 1] == 0x0D { lineEnd -= 1 }  // CRLF
            lineNumber += 1
            let line = bytes[lineStart..<lineEnd]
            lineStart = index + 1

            if line.isEmpty { continue }  // tolerate blank lines (e.g. a trailing empty line)
            currentLine = line
            guard line.count >= 2, let type = line.first, type >= 0x61, type <= 0x7A,
                  line[line.startIndex + 1] == 0x3D /* = */
            else { throw malformed }
            let value = String(decoding: line.dropFirst(2), as: UTF8.self)

            // RFC 8866 §5: v= comes first.
            if !sawVersion {
                guard type == 0x76 /* v */, value == "0" else { throw malformed }
                sawVersion = true
                session.version = 0
                continue
            }

            if type == 0x6D /* m */ {
                mediaCount += 1
                guard mediaCount <= SessionDescription.maximumMediaSections else {
                    throw .tooManyMediaSections(count: mediaCount)
                }
                session.media.append(try parseMediaLine(value))
                currentMediaIsRTP = session.media[session.media.count - 1].isRTP
                continue
            }

            if session.media.isEmpty {
                switch type {
                case 0x76: throw malformed  // a second v=
                case 0x6F /* o */:
                    guard !sawOrigin else { throw malformed }
                    session.origin = try parseOrigin(value)
                    sawOrigin = true
                case 0x73 /* s */:
                    guard !sawName else { throw malformed }
                    session.sessionName = value
                    sawName = true
                case 0x63 /* c */: session.connection = try parseConnection(value)
                case 0x62 /* b */: session.bandwidths.append(try parseBandwidth(value))
                case 0x74 /* t */: session.timings.append(try parseTiming(value))
                case 0x61 /* a */:
                    let attribute = try parseAttribute(value)
                    try validate(attribute, isRTP: false)
                    session.sessionAttributes.append(attribute)
                default: session.otherLines.append(SDPLine(type: String(UnicodeScalar(type)), value: value))
                }
            } else {
                let last = session.media.count - 1
                switch type {
                case 0x76, 0x6F, 0x73, 0x74: throw malformed  // session-only lines inside a media section
                case 0x63: session.media[last].connection = try parseConnection(value)
                case 0x62: session.media[last].bandwidths.append(try parseBandwidth(value))
                case 0x61:
                    let attribute = try parseAttribute(value)
                    try validate(attribute, isRTP: currentMediaIsRTP)
                    session.media[last].attributes.append(attribute)
                default:
                    session.media[last].otherLines.append(SDPLine(type: String(UnicodeScalar(type)), value: value))
                }
            }
        }

        guard sawVersion else { throw .missingRequiredLine("v") }
        guard sawOrigin else { throw .missingRequiredLine("o") }
        guard sawName else { throw .missingRequiredLine("s") }
        if session.timings.isEmpty { session.timings = [SDPTiming()] }  // tolerated: t= absent
        return session
    }

    private var malformed: SDPError {
        .malformedLine(number: lineNumber, text: String(decoding: currentLine.prefix(80), as: UTF8.self))
    }

    // RFC 8866 §5.2
    private func parseOrigin(_ value: String) throws(SDPError) -> SDPOrigin {
        let fields = value.splitASCII(0x20)
        guard fields.count == 6, isDigits(fields[1]), isDigits(fields[2]) else { throw malformed }
        return SDPOrigin(username: String(fields[0]), sessionID: String(fields[1]), sessionVersion: String(fields[2]),
                         networkType: String(fields[3]), addressType: String(fields[4]), address: String(fields[5]))
    }

    // RFC 8866 §5.7
    private func parseConnection(_ value: String) throws(SDPError) -> SDPConnection {
        let fields = value.splitASCII(0x20)
        guard fields.count == 3 else { throw malformed }
        return SDPConnection(networkType: String(fields[0]), addressType: String(fields[1]), address: String(fields[2]))
    }

    // RFC 8866 §5.8
    private func parseBandwidth(_ value: String) throws(SDPError) -> SDPBandwidth {
        let parts = value.splitASCII(0x3A, maxSplits: 1, omittingEmpty: false)
        guard parts.count == 2, !parts[0].isEmpty, let amount = parseNumber(parts[1], max: UInt64(UInt32.max))
        else { throw malformed }
        return SDPBandwidth(type: String(parts[0]), value: amount)
    }

    // RFC 8866 §5.9
    private func parseTiming(_ value: String) throws(SDPError) -> SDPTiming {
        let fields = value.splitASCII(0x20)
        guard fields.count == 2, let start = parseNumber(fields[0], max: UInt64.max),
              let stop = parseNumber(fields[1], max: UInt64.max)
        else { throw malformed }
        return SDPTiming(start: start, stop: stop)
    }

    // RFC 8866 §5.14: m=<media> <port>[/<number of ports>] <proto> <fmt> ...
    private func parseMediaLine(_ value: String) throws(SDPError) -> MediaDescription {
        let fields = value.splitASCII(0x20)
        // <proto> = token *("/" token)
        let protoIsValid = fields.count >= 3
            && fields[2].splitASCII(0x2F, omittingEmpty: false).allSatisfy(isToken)
        guard fields.count >= 4, isToken(fields[0]), protoIsValid else { throw malformed }
        let portParts = fields[1].splitASCII(0x2F, omittingEmpty: false)
        guard portParts.count <= 2, let port = parseNumber(portParts[0], max: 65535) else { throw malformed }
        var portCount: Int?
        if portParts.count == 2 {
            guard let count = parseNumber(portParts[1], max: 65535), count > 0 else { throw malformed }
            portCount = Int(count)
        }
        var media = MediaDescription(kind: String(fields[0]), port: UInt16(port), portCount: portCount,
                                     proto: String(fields[2]), formats: [])
        for format in fields.dropFirst(3) {
            if media.isRTP {
                // RFC 3551 §6 / RFC 8866 §5.14: RTP payload types are 0-127.
                guard parseNumber(format, max: 127) != nil else { throw malformed }
            } else {
                guard isToken(format) else { throw malformed }
            }
            media.formats.append(String(format))
        }
        return media
    }

    // RFC 8866 §5.13: a=<attribute-name>[:<attribute-value>]
    private func parseAttribute(_ value: String) throws(SDPError) -> SDPAttribute {
        guard let colon = value.utf8.firstIndex(of: 0x3A) else {
            guard isToken(Substring(value)) else { throw malformed }
            return SDPAttribute(value, nil)
        }
        let name = value[..<colon]
        guard isToken(name) else { throw malformed }
        let rest = value[value.utf8.index(after: colon)...]
        return SDPAttribute(String(name), String(rest))
    }

    /// Grammar checks for the attributes negotiation reads, so bad values fail here with a line number.
    private func validate(_ attribute: SDPAttribute, isRTP: Bool) throws(SDPError) {
        let value = attribute.value ?? ""
        switch attribute.name.asciiLowercased {
        case "rtpmap" where isRTP:
            // RFC 8866 §6.6: a=rtpmap:<payload type> <encoding name>/<clock rate>[/<encoding parameters>]
            guard SDPAttributeGrammar.rtpMap(value) != nil else { throw malformed }
        case "fmtp" where isRTP:
            // RFC 8866 §6.15: a=fmtp:<format> <format specific parameters>
            guard let first = value.splitASCII(0x20, maxSplits: 1).first,
                  parseNumber(first, max: 127) != nil else { throw malformed }
        case "rtcp-fb" where isRTP:
            // RFC 4585 §4.2: a=rtcp-fb:<pt|*> <type> [<params>]
            let parts = value.splitASCII(0x20, maxSplits: 1)
            guard parts.count == 2, parts[0] == "*" || parseNumber(parts[0], max: 127) != nil else { throw malformed }
        case "extmap":
            guard SDPAttributeGrammar.extensionMap(value) != nil else { throw malformed }
        case "fingerprint":
            guard SDPAttributeGrammar.fingerprint(value) != nil else { throw malformed }
        case "setup":
            guard SDPSetup(rawValue: value.asciiLowercased) != nil else { throw malformed }
        case "ssrc":
            guard SDPAttributeGrammar.ssrcAttribute(value) != nil else { throw malformed }
        case "mid":
            guard !value.isEmpty else { throw malformed }
        default:
            break
        }
    }
}

// MARK: - Small lexical helpers (ASCII only, no Foundation)

/// Decimal digits only (no sign), 1-20 characters.
func isDigits(_ text: Substring) -> Bool {
    var count = 0
    for byte in text.utf8 {
        guard byte >= 0x30, byte <= 0x39 else { return false }
        count += 1
    }
    return count > 0 && count <= 20
}

/// A decimal number ≤ `max`, or nil (rejects signs, spaces, overflow).
func parseNumber(_ text: Substring, max: UInt64) -> UInt64? {
    var value: UInt64 = 0
    var count = 0
    for byte in text.utf8 {
        guard byte >= 0x30, byte <= 0x39 else { return nil }
        let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
        let (sum, overflow2) = times10.addingReportingOverflow(UInt64(byte - 0x30))
        guard !overflow1, !overflow2 else { return nil }
        value = sum
        count += 1
    }
    return count > 0 && value <= max ? value : nil
}

func parseNumber(_ text: String, max: UInt64) -> UInt64? { parseNumber(text[...], max: max) }

/// RFC 8866 §9 token: visible ASCII except a few separators.
func isToken(_ text: Substring) -> Bool {
    var count = 0
    for byte in text.utf8 {
        switch byte {
        case 0x21, 0x23...0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x30...0x39, 0x41...0x5A, 0x5E...0x7E: count += 1
        default: return false
        }
    }
    return count > 0
}

extension String {
    /// ASCII-only lower-casing (SDP names and hex are ASCII; no locale, no Foundation).
    var asciiLowercased: String {
        if !utf8.contains(where: { $0 >= 0x41 && $0 <= 0x5A }) { return self }
        return String(decoding: utf8.map { ($0 >= 0x41 && $0 <= 0x5A) ? $0 + 0x20 : $0 }, as: UTF8.self)
    }
}

extension Substring {
    var asciiLowercased: String { String(self).asciiLowercased }
}

extension Substring {
    /// Splits at an ASCII byte, walking UTF-8 (much cheaper than Character splitting, and a "\r\n" or a
    /// combining mark after the separator cannot hide it). After `maxSplits` splits the rest is one piece.
    func splitASCII(_ separator: UInt8, maxSplits: Int = .max, omittingEmpty: Bool = true) -> [Substring] {
        var result: [Substring] = []
        var splits = 0
        let view = utf8
        var start = view.startIndex
        var index = start
        let end = view.endIndex
        while index < end {
            if view[index] == separator, splits < maxSplits {
                if !(omittingEmpty && start == index) {
                    result.append(self[start..<index])
                    splits += 1
                }
                start = view.index(after: index)
            }
            view.formIndex(after: &index)
        }
        if !(omittingEmpty && start == end) { result.append(self[start..<end]) }
        return result
    }
}

extension String {
    func splitASCII(_ separator: UInt8, maxSplits: Int = .max, omittingEmpty: Bool = true) -> [Substring] {
        self[...].splitASCII(separator, maxSplits: maxSplits, omittingEmpty: omittingEmpty)
    }
}
