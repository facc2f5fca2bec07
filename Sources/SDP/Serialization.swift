// RFC 8866 §5: serialization in the mandated line order, CRLF line endings.

extension SessionDescription {
    /// The description as SDP text with `\r\n` line endings, lines in RFC 8866 §5 order:
    /// v o s [i u e p] c b t [r z k] a, then each m section: m [i] c b [k] a.
    public func serialized() -> String {
        var out = ""
        out.reserveCapacity(2048)
        func line(_ type: String, _ value: String) {
            out += type
            out += "="
            out += value
            out += "\r\n"
        }
        line("v", String(version))
        line("o", "\(origin.username) \(origin.sessionID) \(origin.sessionVersion) \(origin.networkType) \(origin.addressType) \(origin.address)")
        line("s", sessionName)
        for other in otherLines where Self.sessionRank(other.type) < 1 { line(other.type, other.value) }
        if let connection { line("c", connection.sdpValue) }
        for bandwidth in bandwidths { line("b", bandwidth.sdpValue) }
        for timing in (timings.isEmpty ? [SDPTiming()] : timings) { line("t", "\(timing.start) \(timing.stop)") }
        for other in otherLines where Self.sessionRank(other.type) >= 1 { line(other.type, other.value) }
        for attribute in sessionAttributes { line("a", attribute.sdpValue) }
        for section in media {
            var mline = section.kind + " " + String(section.port)
            if let count = section.portCount { mline += "/" + String(count) }
            mline += " " + section.proto
            for format in section.formats { mline += " " + format }
            line("m", mline)
            for other in section.otherLines where other.type == "i" { line(other.type, other.value) }
            if let connection = section.connection { line("c", connection.sdpValue) }
            for bandwidth in section.bandwidths { line("b", bandwidth.sdpValue) }
            for other in section.otherLines where other.type != "i" { line(other.type, other.value) }
            for attribute in section.attributes { line("a", attribute.sdpValue) }
        }
        return out
    }

    /// Session-level lines that belong before c= (i u e p) rank 0, the rest after t=.
    private static func sessionRank(_ type: String) -> Int {
        switch type {
        case "i", "u", "e", "p": return 0
        default: return 1
        }
    }
}

extension SDPAttribute {
    var sdpValue: String { value.map { name + ":" + $0 } ?? name }
}

extension SDPConnection {
    var sdpValue: String { "\(networkType) \(addressType) \(address)" }
}

extension SDPBandwidth {
    var sdpValue: String { "\(type):\(value)" }
}
