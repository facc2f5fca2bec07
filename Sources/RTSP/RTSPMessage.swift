/// An RTSP request as the server reads it (RFC 2326 §6): method, Request-URI, headers, body.
public struct RTSPRequest: Equatable, Sendable {
    public var method: String
    public var uri: String
    public var version: String
    /// In order, names as sent; look up with `header(_:)` (case-insensitive, RFC 2326 §4.2).
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(method: String, uri: String, version: String = "RTSP/1.0", headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.method = method
        self.uri = uri
        self.version = version
        self.headers = headers
        self.body = body
    }

    public func header(_ name: String) -> String? {
        let lowered = name.lowercased()
        return headers.first { $0.name.lowercased() == lowered }?.value
    }

    public static func == (lhs: RTSPRequest, rhs: RTSPRequest) -> Bool {
        lhs.method == rhs.method && lhs.uri == rhs.uri && lhs.version == rhs.version && lhs.body == rhs.body
            && lhs.headers.map(\.name) == rhs.headers.map(\.name) && lhs.headers.map(\.value) == rhs.headers.map(\.value)
    }
}

/// An RTSP response (RFC 2326 §7).
public struct RTSPResponse: Equatable, Sendable {
    public var status: Int
    public var reason: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(status: Int, reason: String? = nil, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.status = status
        self.reason = reason ?? RTSPResponse.reasonPhrase(status)
        self.headers = headers
        self.body = body
    }

    public func header(_ name: String) -> String? {
        let lowered = name.lowercased()
        return headers.first { $0.name.lowercased() == lowered }?.value
    }

    /// The bytes on the wire; Content-Length is added when there is a body.
    public func serialized() -> [UInt8] {
        var text = "RTSP/1.0 \(status) \(reason)\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        if !body.isEmpty { text += "Content-Length: \(body.count)\r\n" }
        text += "\r\n"
        return Array(text.utf8) + body
    }

    public static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 200: return "OK"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 406: return "Not Acceptable"
        case 454: return "Session Not Found"
        case 455: return "Method Not Valid in This State"
        case 459: return "Aggregate Operation Not Allowed"
        case 461: return "Unsupported Transport"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 503: return "Service Unavailable"
        case 505: return "RTSP Version Not Supported"
        default: return "Status \(status)"
        }
    }

    public static func == (lhs: RTSPResponse, rhs: RTSPResponse) -> Bool {
        lhs.status == rhs.status && lhs.reason == rhs.reason && lhs.body == rhs.body
            && lhs.headers.map(\.name) == rhs.headers.map(\.name) && lhs.headers.map(\.value) == rhs.headers.map(\.value)
    }
}

/// What a client's byte stream holds (RFC 2326 §10.12): requests, and interleaved binary frames
/// (`$`, channel, 16-bit length) carrying its RTCP over the same TCP connection.
public enum RTSPInput: Equatable, Sendable {
    case request(RTSPRequest)
    case interleaved(channel: UInt8, payload: [UInt8])
}

public enum RTSPParseError: Error, Equatable, Sendable {
    case headerTooLarge
    case bodyTooLarge
    case malformedRequestLine(String)
    case malformedHeader(String)
    case unsupportedVersion(String)
}

/// Incremental, bounded parser for what a client sends: feed bytes as they come, take whole
/// messages out. Malformed input throws (the connection is then answered 400 and closed).
public struct RTSPMessageParser: Sendable {
    public static let maximumHeaderSize = 8 * 1024
    public static let maximumBodySize = 64 * 1024

    private var buffer: [UInt8] = []

    public init() {}

    public var bufferedByteCount: Int { buffer.count }

    /// Appends `bytes` and returns every complete message now in the buffer.
    public mutating func append(_ bytes: [UInt8]) throws(RTSPParseError) -> [RTSPInput] {
        buffer += bytes
        var inputs: [RTSPInput] = []
        while let input = try next() { inputs.append(input) }
        return inputs
    }

    private mutating func next() throws(RTSPParseError) -> RTSPInput? {
        // Blank lines between requests are allowed (a client's keep-alive CRLF).
        while let first = buffer.first, first == 13 || first == 10 { buffer.removeFirst() }
        guard let first = buffer.first else { return nil }
        if first == 0x24 {  // '$'
            guard buffer.count >= 4 else { return nil }
            let length = Int(buffer[2]) << 8 | Int(buffer[3])
            guard buffer.count >= 4 + length else { return nil }
            let input = RTSPInput.interleaved(channel: buffer[1], payload: Array(buffer[4..<(4 + length)]))
            buffer.removeFirst(4 + length)
            return input
        }
        guard let end = Self.headerEnd(in: buffer) else {
            if buffer.count > Self.maximumHeaderSize { throw .headerTooLarge }
            return nil
        }
        guard end.start <= Self.maximumHeaderSize else { throw .headerTooLarge }
        // Lines cut on LF bytes (a Swift String holds "\r\n" as one Character), CR dropped.
        var lines: [String] = []
        for line in buffer[0..<end.start].split(separator: 10, omittingEmptySubsequences: false) {
            let trimmed = line.last == 13 ? line.dropLast() : line
            guard let text = String(validating: trimmed, as: UTF8.self) else { throw .malformedRequestLine("not UTF-8") }
            lines.append(text)
        }
        let requestLine = lines.removeFirst()
        let parts = requestLine.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 3, parts[0].allSatisfy({ $0.isLetter || $0 == "_" }) else {
            throw .malformedRequestLine(String(requestLine.prefix(80)))
        }
        guard parts[2] == "RTSP/1.0" else { throw .unsupportedVersion(String(parts[2].prefix(20))) }
        var headers: [(name: String, value: String)] = []
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { throw .malformedHeader(String(line.prefix(80))) }
            let name = line[..<colon].trimmingCharacters(in: " \t")
            guard !name.isEmpty, !name.contains(where: { $0 == " " }) else { throw .malformedHeader(String(line.prefix(80))) }
            headers.append((String(name), String(line[line.index(after: colon)...].trimmingCharacters(in: " \t"))))
        }
        var length = 0
        if let value = headers.first(where: { $0.name.lowercased() == "content-length" })?.value {
            guard let parsed = Int(value), parsed >= 0 else { throw .malformedHeader("Content-Length: \(value.prefix(20))") }
            guard parsed <= Self.maximumBodySize else { throw .bodyTooLarge }
            length = parsed
        }
        guard buffer.count >= end.after + length else { return nil }
        let body = Array(buffer[end.after..<(end.after + length)])
        buffer.removeFirst(end.after + length)
        return .request(RTSPRequest(method: String(parts[0]), uri: String(parts[1]), version: String(parts[2]),
                                    headers: headers, body: body))
    }

    /// Where the header block ends: CRLFCRLF (or LFLF from lenient clients).
    private static func headerEnd(in bytes: [UInt8]) -> (start: Int, after: Int)? {
        var index = 0
        while index + 1 < bytes.count {
            if bytes[index] == 10 {
                if bytes[index + 1] == 10 { return (index, index + 2) }
                if index + 2 < bytes.count, bytes[index + 1] == 13, bytes[index + 2] == 10 {
                    return (index > 0 && bytes[index - 1] == 13 ? index - 1 : index, index + 3)
                }
            }
            index += 1
        }
        return nil
    }
}

extension Substring {
    func trimmingCharacters(in set: String) -> Substring {
        var slice = self
        while let first = slice.first, set.contains(first) { slice = slice.dropFirst() }
        while let last = slice.last, set.contains(last) { slice = slice.dropLast() }
        return slice
    }
}
