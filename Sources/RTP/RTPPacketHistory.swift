/// Bounded history of sent plaintext RTP packets, for answering NACKs (RFC 4585 §6.2.1) with
/// retransmissions (RFC 4588). A ring indexed by sequence number modulo the capacity; each slot keeps
/// the sequence number it holds, so a lookup never returns a packet that was overwritten.
public struct RTPPacketHistory: Sendable {
    private var sequenceNumbers: [UInt16]
    private var packets: [[UInt8]?]
    private let mask: Int

    /// Number of slots: `capacity` rounded up to a power of two (1...32768), so that consecutive
    /// sequence numbers stay consecutive across the 65535 → 0 wrap.
    public let capacity: Int
    /// The sequence number stored last (nil: nothing yet).
    public private(set) var newestSequenceNumber: UInt16?

    public init(capacity: Int) {
        var slots = 1
        while slots < min(max(capacity, 1), 32768) { slots <<= 1 }
        self.capacity = slots
        mask = slots - 1
        sequenceNumbers = Array(repeating: 0, count: slots)
        packets = Array(repeating: nil, count: slots)
    }

    /// Stores `packet`, evicting the one `capacity` sequence numbers older.
    public mutating func store(_ packet: [UInt8], sequenceNumber: UInt16) {
        let slot = Int(sequenceNumber) & mask
        sequenceNumbers[slot] = sequenceNumber
        packets[slot] = packet
        newestSequenceNumber = sequenceNumber
    }

    /// The stored packet, or nil if it was evicted or never stored.
    public func packet(sequenceNumber: UInt16) -> [UInt8]? {
        let slot = Int(sequenceNumber) & mask
        guard sequenceNumbers[slot] == sequenceNumber else { return nil }
        return packets[slot]
    }

    public mutating func removeAll() {
        for slot in packets.indices { packets[slot] = nil }
        newestSequenceNumber = nil
    }
}
