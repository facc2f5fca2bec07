import NIOCore
import NIOHTTP1

/// A request as the router sees it: the whole body is collected first (WHEP offers are small).
struct HTTPRequest {
    var method: HTTPMethod
    var path: String
    var query: Substring
    var headers: HTTPHeaders
    var body: [UInt8]
    /// Whether it came over TLS (the HTTPS listener's handlers are made with `isSecureTransport: true`).
    var isSecureTransport = false
    /// Where the request came from (the TCP peer), when known.
    var remoteAddress: SocketAddress? = nil

    var contentType: String? {
        headers.first(name: "content-type")?.split(separator: ";").first
            .map { $0.trimmingSpaces.lowercased() }
    }

    /// "/path?query" → the path and the query (after the first "?"; empty without one).
    static func split(uri: String) -> (path: String, query: Substring) {
        guard let mark = uri.firstIndex(of: "?") else { return (uri, "") }
        return (String(uri[..<mark]), uri[uri.index(after: mark)...])
    }
}

struct HTTPResponse {
    var status: HTTPResponseStatus
    var headers: [(String, String)] = []
    var body: [UInt8] = []
    /// A body written over time instead of `body` (MJPEG, HTTPStreaming.swift).
    var stream: HTTPStreamingBody? = nil

    static func text(_ status: HTTPResponseStatus, _ message: String, headers: [(String, String)] = []) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", "text/plain; charset=utf-8")] + headers,
                     body: Array((message + "\n").utf8))
    }

    static func json(_ status: HTTPResponseStatus = .ok, _ json: String, headers: [(String, String)] = []) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", "application/json")] + headers, body: Array(json.utf8))
    }

    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    static func html(_ page: String, headers: [(String, String)] = []) -> HTTPResponse {
        HTTPResponse(status: .ok, headers: [("Content-Type", "text/html; charset=utf-8"),
                                            ("Cache-Control", "no-store")] + headers, body: Array(page.utf8))
    }
}

extension StringProtocol {
    var trimmingSpaces: String {
        var slice = Substring(self)
        while let first = slice.first, first == " " || first == "\t" { slice = slice.dropFirst() }
        while let last = slice.last, last == " " || last == "\t" { slice = slice.dropLast() }
        return String(slice)
    }
}
