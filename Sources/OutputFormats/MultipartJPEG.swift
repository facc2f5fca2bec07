/// multipart/x-mixed-replace framing for an MJPEG stream (RFC 2046 §5.1.1 multipart syntax; the
/// x-mixed-replace subtype browsers, FFmpeg, VLC, OctoPrint and NVRs read): each part is one JPEG
/// with its own Content-Type and Content-Length, preceded by the boundary.
public enum MultipartJPEG {
    /// The boundary rtcam uses (RFC 2046 §5.1.1: 1-70 characters, never inside a JPEG's part
    /// because every part carries its Content-Length and readers skip by it).
    public static let boundary = "rtcamframe"

    public static var contentType: String { "multipart/x-mixed-replace; boundary=\(boundary)" }

    /// One part: delimiter line, headers, blank line, the JPEG, CRLF.
    public static func part(jpeg: [UInt8], timestampMicroseconds: Int64? = nil) -> [UInt8] {
        var header = "--\(boundary)\r\nContent-Type: image/jpeg\r\nContent-Length: \(jpeg.count)\r\n"
        if let timestampMicroseconds {
            let seconds = timestampMicroseconds / 1_000_000
            let micros = timestampMicroseconds % 1_000_000
            let padded = String(repeating: "0", count: 6 - String(micros).count) + String(micros)
            header += "X-Timestamp: \(seconds).\(padded)\r\n"
        }
        header += "\r\n"
        var bytes = Array(header.utf8)
        bytes.reserveCapacity(bytes.count + jpeg.count + 2)
        bytes += jpeg
        bytes += [13, 10]
        return bytes
    }

    /// Reads parts back from a byte stream (tests, and a check of what a client gets): each call to
    /// `append` may complete zero or more JPEGs. Malformed input throws; it never crashes.
    public struct Reader {
        public enum Failure: Error, Equatable { case malformed(String) }

        private var buffer: [UInt8] = []
        public private(set) var parts: [[UInt8]] = []
        private let maximumPartSize: Int

        public init(maximumPartSize: Int = 8 << 20) { self.maximumPartSize = maximumPartSize }

        public mutating func append(_ bytes: [UInt8]) throws(Failure) {
            buffer += bytes
            while let part = try nextPart() { parts.append(part) }
        }

        private mutating func nextPart() throws(Failure) -> [UInt8]? {
            // Skip CRLFs between parts, then expect "--boundary".
            var start = 0
            while start + 1 < buffer.count, buffer[start] == 13, buffer[start + 1] == 10 { start += 2 }
            guard let headerEnd = Self.find([13, 10, 13, 10], in: buffer, from: start) else {
                if buffer.count - start > 4096 { throw .malformed("part headers longer than 4096 bytes") }
                return nil
            }
            let headerText = String(decoding: buffer[start..<headerEnd], as: UTF8.self)
            let lines = headerText.split(separator: "\r\n", omittingEmptySubsequences: false)
            guard let first = lines.first, first.hasPrefix("--" + MultipartJPEG.boundary) else {
                throw .malformed("part does not start with the boundary")
            }
            var length: Int?
            for line in lines.dropFirst() {
                let pieces = line.split(separator: ":", maxSplits: 1)
                if pieces.count == 2, pieces[0].lowercased() == "content-length" {
                    length = Int(pieces[1].drop(while: { $0 == " " }))
                }
            }
            guard let length, length >= 0, length <= maximumPartSize else { throw .malformed("no usable Content-Length") }
            let bodyStart = headerEnd + 4
            guard buffer.count >= bodyStart + length else { return nil }
            let part = Array(buffer[bodyStart..<(bodyStart + length)])
            buffer.removeFirst(bodyStart + length)
            return part
        }

        private static func find(_ pattern: [UInt8], in bytes: [UInt8], from: Int) -> Int? {
            guard bytes.count >= pattern.count else { return nil }
            var index = from
            while index + pattern.count <= bytes.count {
                if bytes[index] == pattern[0], Array(bytes[index..<(index + pattern.count)]) == pattern { return index }
                index += 1
            }
            return nil
        }
    }
}
