/// Reads big-endian (network order) fields from a byte buffer, never trapping:
/// every read that would run past the end throws `ParseError.truncated`.
public struct ByteReader: Sendable {
    public let bytes: [UInt8]
    public private(set) var offset: Int
    public let endIndex: Int

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
        self.offset = 0
        self.endIndex = bytes.count
    }

    /// A reader over `bytes[range]`; offsets stay those of the whole buffer.
    public init(_ bytes: [UInt8], range: Range<Int>) {
        self.bytes = bytes
        self.offset = max(0, min(range.lowerBound, bytes.count))
        self.endIndex = max(self.offset, min(range.upperBound, bytes.count))
    }

    public var remaining: Int { endIndex - offset }
    public var isAtEnd: Bool { offset >= endIndex }

    @inline(__always)
    private func require(_ count: Int, _ context: StaticString) throws(ParseError) {
        guard count >= 0, remaining >= count else {
            throw ParseError.truncated(context: "\(context)", needed: count, available: remaining)
        }
    }

    public mutating func readUInt8(_ context: StaticString = "u8") throws(ParseError) -> UInt8 {
        try require(1, context)
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func readUInt16(_ context: StaticString = "u16") throws(ParseError) -> UInt16 {
        try require(2, context)
        defer { offset += 2 }
        return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }

    public mutating func readUInt24(_ context: StaticString = "u24") throws(ParseError) -> UInt32 {
        try require(3, context)
        defer { offset += 3 }
        return UInt32(bytes[offset]) << 16 | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2])
    }

    public mutating func readUInt32(_ context: StaticString = "u32") throws(ParseError) -> UInt32 {
        try require(4, context)
        defer { offset += 4 }
        return UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16
            | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
    }

    public mutating func readUInt64(_ context: StaticString = "u64") throws(ParseError) -> UInt64 {
        let high = try readUInt32(context)
        let low = try readUInt32(context)
        return UInt64(high) << 32 | UInt64(low)
    }

    public mutating func readBytes(_ count: Int, _ context: StaticString = "bytes") throws(ParseError) -> [UInt8] {
        try require(count, context)
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    /// The range of the next `count` bytes, consumed without copying.
    public mutating func readRange(_ count: Int, _ context: StaticString = "bytes") throws(ParseError) -> Range<Int> {
        try require(count, context)
        defer { offset += count }
        return offset..<offset + count
    }

    public mutating func skip(_ count: Int, _ context: StaticString = "skip") throws(ParseError) {
        try require(count, context)
        offset += count
    }

    public func peekUInt8() -> UInt8? { isAtEnd ? nil : bytes[offset] }

    public mutating func readRemaining() -> [UInt8] {
        defer { offset = endIndex }
        return Array(bytes[offset..<endIndex])
    }
}

/// Parse failures of every wire format; each names what was being read.
public enum ParseError: Error, Equatable, Sendable, CustomStringConvertible {
    case truncated(context: String, needed: Int, available: Int)
    case invalid(String)

    public var description: String {
        switch self {
        case let .truncated(context, needed, available):
            return "truncated \(context): needed \(needed) bytes, \(available) available"
        case let .invalid(reason):
            return "invalid: \(reason)"
        }
    }
}
