// String searching with the standard library alone. `"a".contains("b")`, `firstRange(of:)` and
// friends live in _StringProcessing: one such call links it and _RegexParser, 1.26 MB of the
// stripped daemon (README.md, "Facts measured here"; Tests/check-footprint.sh fails the build if they come back).

extension StringProtocol {
    /// Whether `text` occurs in this string, compared as UTF-8 bytes (exact for the ASCII tokens of
    /// SDP, HTTP and device tables; UTF-8 is self-synchronizing, so a match never starts inside a
    /// character).
    public func containsText(_ text: some StringProtocol) -> Bool {
        let pattern = Array(text.utf8)
        guard let first = pattern.first else { return true }
        let haystack = Array(utf8)
        guard pattern.count <= haystack.count else { return false }
        for start in 0...(haystack.count - pattern.count) where haystack[start] == first {
            if haystack[start..<(start + pattern.count)].elementsEqual(pattern) { return true }
        }
        return false
    }
}
