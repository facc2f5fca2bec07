extension String {
    /// `self` with `pad` in front up to `width` characters ("7" → "007").
    public func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}

extension Array where Element == UInt8 {
    /// Two lowercase hexadecimal digits a byte ([0x0a, 0xff] → "0aff").
    public var hexadecimal: String {
        map { String($0, radix: 16).leftPadded(to: 2) }.joined()
    }
}
