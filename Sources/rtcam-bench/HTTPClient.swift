#if canImport(Glibc)
import Glibc
#endif

/// A minimal blocking HTTP/1.1 client over a Glibc TCP socket, for WHEP (POST offer, DELETE
/// session) against a daemon on loopback: one request per connection (`Connection: close`).
struct HTTPResponse {
    var status: Int
    var headers: [(name: String, value: String)]
    var body: [UInt8]

    func header(_ name: String) -> String? {
        let wanted = name.lowercased()
        return headers.first { $0.name.lowercased() == wanted }?.value
    }

    var bodyText: String { String(decoding: body, as: UTF8.self) }
}

enum HTTPClientError: Error, CustomStringConvertible {
    case badURL(String)
    case system(String, errno: Int32)
    case malformedResponse(String)

    var description: String {
        switch self {
        case let .badURL(url): "not an http://IPv4:port URL: \(url)"
        case let .system(call, code): "\(call) failed: \(String(cString: strerror(code)))"
        case let .malformedResponse(reason): "malformed HTTP response: \(reason)"
        }
    }
}

/// `http://127.0.0.1:8080[/path]` → host, port, path.
struct HTTPEndpoint {
    var host: String
    var port: UInt16
    var path: String

    init(_ url: String) throws(HTTPClientError) {
        guard url.hasPrefix("http://") else { throw .badURL(url) }
        let rest = url.dropFirst("http://".count)
        let authority = rest.prefix { $0 != "/" }
        path = rest.count > authority.count ? String(rest.dropFirst(authority.count)) : "/"
        let parts = authority.split(separator: ":")
        guard parts.count == 2, let port = UInt16(parts[1]) else { throw .badURL(url) }
        host = String(parts[0])
        self.port = port
    }
}

enum HTTPClient {
    static func request(method: String, host: String, port: UInt16, path: String,
                        headers: [(String, String)] = [], body: [UInt8] = [],
                        timeoutMilliseconds: Int = 20_000) throws(HTTPClientError) -> HTTPResponse {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw .system("socket", errno: errno) }
        defer { close(fd) }
        var timeout = timeval(tv_sec: timeoutMilliseconds / 1000, tv_usec: (timeoutMilliseconds % 1000) * 1000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))

        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { throw .badURL(host) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw .system("connect", errno: errno) }

        var head = "\(method) \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nConnection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if !body.isEmpty || method == "POST" { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        let message = Array(head.utf8) + body
        var sent = 0
        while sent < message.count {
            let written = message.withUnsafeBytes { send(fd, $0.baseAddress! + sent, message.count - sent, Int32(MSG_NOSIGNAL)) }
            if written < 0 {
                if errno == EINTR { continue }
                throw .system("send", errno: errno)
            }
            sent += written
        }

        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16_384)
        var headerEnd: Int?
        var contentLength: Int?
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .system("recv", errno: errno)
            }
            if count == 0 { break }
            received += buffer[0 ..< count]
            if headerEnd == nil, let end = Self.endOfHeaders(received) {
                headerEnd = end
                contentLength = Self.contentLength(in: received[0 ..< end])
            }
            if let headerEnd, let contentLength, received.count >= headerEnd + contentLength { break }
        }
        guard let headerEnd else { throw .malformedResponse("no end of headers in \(received.count) bytes") }
        let lines = String(decoding: received[0 ..< headerEnd], as: UTF8.self)
            .split(separator: "\r\n", omittingEmptySubsequences: true)
        guard let statusLine = lines.first else { throw .malformedResponse("empty") }
        let statusParts = statusLine.split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else {
            throw .malformedResponse("status line '\(statusLine)'")
        }
        var parsedHeaders: [(name: String, value: String)] = []
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            parsedHeaders.append((String(line[..<colon]), String(line[line.index(after: colon)...]).trimmingSpaces))
        }
        var responseBody = Array(received[(headerEnd)...])
        if let contentLength, responseBody.count > contentLength { responseBody = Array(responseBody.prefix(contentLength)) }
        return HTTPResponse(status: status, headers: parsedHeaders, body: responseBody)
    }

    /// Index just past "\r\n\r\n".
    private static func endOfHeaders(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for index in 0 ... bytes.count - 4
            where bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 {
            return index + 4
        }
        return nil
    }

    private static func contentLength(in head: ArraySlice<UInt8>) -> Int? {
        for line in String(decoding: head, as: UTF8.self).split(separator: "\r\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "content-length" {
                return Int(String(parts[1]).trimmingSpaces)
            }
        }
        return nil
    }
}

extension String {
    var trimmingSpaces: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
