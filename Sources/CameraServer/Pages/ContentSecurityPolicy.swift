import DTLS

/// Content-Security-Policy for rtcam's responses (issue 16). The pages keep their one inline
/// `<script>` and `<style>`, allowed by their SHA-256 hashes (CSP Level 3 §8.3.4), computed from the
/// page text itself, so no 'unsafe-inline' is needed and an edit of a page cannot get out of step.
/// The settings page may not be framed (`frame-ancestors 'none'`: no clickjacking); the viewer page
/// may be embedded (dashboards). Every other response (JSON, text, SDP) gets a policy that loads
/// nothing and cannot be framed; such a response shown as a document runs no script of its own, and
/// `connect-src 'self'` leaves same-origin tools that use it as a blank page (the interop tests use
/// /healthz so) able to reach /whep.
enum ContentSecurityPolicy {
    static let settingsPage = policy(for: SettingsPage.html, framing: "'none'")
    static let viewerPage = policy(for: ViewerPage.html, framing: nil)
    static let other = "default-src 'none'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

    static func policy(for page: String, framing: String?) -> String {
        let scripts = inlineBlocks(of: "script", in: page).map { "'sha256-\(Base64.encode(MbedDigest.sha256(Array($0.utf8))))'" }
        let styles = inlineBlocks(of: "style", in: page).map { "'sha256-\(Base64.encode(MbedDigest.sha256(Array($0.utf8))))'" }
        var parts = [
            "default-src 'none'",
            "script-src " + (scripts.isEmpty ? "'none'" : scripts.joined(separator: " ")),
            "style-src " + (styles.isEmpty ? "'none'" : styles.joined(separator: " ")),
            "connect-src 'self'", "img-src 'self' data:", "media-src 'self' blob: mediastream:",
            "base-uri 'none'", "form-action 'self'",
        ]
        if let framing { parts.append("frame-ancestors \(framing)") }
        return parts.joined(separator: "; ")
    }

    /// The text between every `<tag>` (no attributes) and the next `</tag>`, exactly as the browser
    /// hashes it. Searched as UTF-8 bytes with the standard library (`firstRange(of:)` would link
    /// _StringProcessing: README, "Facts measured here").
    static func inlineBlocks(of tag: String, in page: String) -> [String] {
        let bytes = Array(page.utf8)
        let open = Array("<\(tag)>".utf8)
        let close = Array("</\(tag)>".utf8)
        var blocks: [String] = []
        var position = 0
        while let start = offset(of: open, in: bytes, from: position) {
            let contentStart = start + open.count
            guard let end = offset(of: close, in: bytes, from: contentStart) else { break }
            blocks.append(String(decoding: bytes[contentStart..<end], as: UTF8.self))
            position = end + close.count
        }
        return blocks
    }

    static func offset(of pattern: [UInt8], in bytes: [UInt8], from start: Int) -> Int? {
        guard !pattern.isEmpty, bytes.count >= pattern.count, start <= bytes.count - pattern.count else { return nil }
        for index in start...(bytes.count - pattern.count) where bytes[index] == pattern[0] {
            if bytes[index..<(index + pattern.count)].elementsEqual(pattern) { return index }
        }
        return nil
    }
}

/// Base64 (RFC 4648 §4), with padding.
enum Base64 {
    private static let digits = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")

    static func encode(_ bytes: [UInt8]) -> String {
        var text = ""
        text.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let count = min(3, bytes.count - index)
            let b0 = UInt32(bytes[index])
            let b1 = count > 1 ? UInt32(bytes[index + 1]) : 0
            let b2 = count > 2 ? UInt32(bytes[index + 2]) : 0
            let group = b0 << 16 | b1 << 8 | b2
            text.append(digits[Int(group >> 18 & 63)])
            text.append(digits[Int(group >> 12 & 63)])
            text.append(count > 1 ? digits[Int(group >> 6 & 63)] : "=")
            text.append(count > 2 ? digits[Int(group & 63)] : "=")
            index += 3
        }
        return text
    }
}
