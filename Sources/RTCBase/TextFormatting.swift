extension String {
    /// `self` as a JSON string literal (RFC 8259 §7): quotes, backslash and control characters escaped.
    public var jsonQuoted: String {
        var out = "\""
        for scalar in unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let control where control.value < 0x20:
                out += "\\u00" + String(control.value, radix: 16).leftPadded(to: 2)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

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
