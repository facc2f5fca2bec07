/// Widens 16-bit RTP sequence numbers to 64 bits (RFC 3550 §A.1 "cycles"): each value is placed
/// within ±32768 of the previous one, so wrap-arounds 65535 → 0 count up and reordering across a
/// wrap counts back. The first value maps to itself.
public struct SequenceNumberUnwrapper: Sendable {
    private var last: Int64?

    public init() {}

    public mutating func unwrap(_ seq: UInt16) -> Int64 {
        guard let last else {
            self.last = Int64(seq)
            return Int64(seq)
        }
        let value = last + Int64(Int16(bitPattern: seq &- UInt16(truncatingIfNeeded: last)))
        self.last = value
        return value
    }
}

/// Widens 32-bit RTP timestamps (RFC 3550 §5.1) to 64 bits the same way (±2^31 around the previous).
public struct RTPTimestampUnwrapper: Sendable {
    private var last: Int64?

    public init() {}

    public mutating func unwrap(_ timestamp: UInt32) -> Int64 {
        guard let last else {
            self.last = Int64(timestamp)
            return Int64(timestamp)
        }
        let value = last + Int64(Int32(bitPattern: timestamp &- UInt32(truncatingIfNeeded: last)))
        self.last = value
        return value
    }
}
