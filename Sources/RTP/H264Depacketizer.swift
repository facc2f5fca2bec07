/// RFC 6184 receiver for packetization-mode=1: rebuilds access units in Annex-B (4-byte start codes)
/// from single NAL unit packets (§5.6), STAP-A (§5.7.1) and FU-A (§5.8).
///
/// Packets must come in sequence order (after a jitter buffer, if any); up to 512 behind the newest
/// are taken as late or repeated and ignored, further back as a jump of the sender (treated as a gap). A sequence gap, a malformed payload or an unfinished FU-A makes the access unit it touches
/// unusable: it is dropped whole and counted, and decoding restarts with the next access unit.
public struct H264Depacketizer: Sendable {
    private static let startCode: [UInt8] = [0, 0, 0, 1]
    private static let maxMisorder: Int16 = 512

    private var buffer: [UInt8] = []
    private var accessUnitTimestamp: UInt32?
    private var accessUnitBroken = false
    private var inFragment = false
    private var expectedSequence: UInt16?

    /// Access units returned complete.
    public private(set) var completedAccessUnits = 0
    /// Access units dropped because a packet was missing or malformed.
    public private(set) var droppedAccessUnits = 0

    public init() {}

    public mutating func push(_ packet: RTPPacket) -> [UInt8]? {
        var gap = false
        if let expected = expectedSequence {
            let distance = Int16(bitPattern: packet.sequenceNumber &- expected)
            // Late or repeated: ignored. Far behind: the sender jumped (restart), resynchronize.
            if distance < 0, distance >= -Self.maxMisorder { return nil }
            gap = distance != 0
        }
        expectedSequence = packet.sequenceNumber &+ 1

        // A new timestamp while an access unit is open: its marker packet never came.
        if let timestamp = accessUnitTimestamp, timestamp != packet.timestamp {
            dropAccessUnit()
        }
        if accessUnitTimestamp == nil {
            accessUnitTimestamp = packet.timestamp
            if buffer.capacity < 64 * 1024 { buffer.reserveCapacity(64 * 1024) }
        }
        // The lost packets may have belonged to this access unit (even its first NAL units).
        if gap { accessUnitBroken = true }
        if !accessUnitBroken, !append(packet.payload) { accessUnitBroken = true }

        guard packet.marker else { return nil }
        if inFragment { accessUnitBroken = true }  // §5.8: the AU ended inside a fragmented NAL unit
        if accessUnitBroken || buffer.isEmpty {
            dropAccessUnit()
            return nil
        }
        let accessUnit = buffer
        reset()
        completedAccessUnits += 1
        return accessUnit
    }

    private mutating func dropAccessUnit() {
        if accessUnitBroken || !buffer.isEmpty { droppedAccessUnits += 1 }
        reset()
    }

    private mutating func reset() {
        buffer.removeAll(keepingCapacity: true)
        accessUnitTimestamp = nil
        accessUnitBroken = false
        inFragment = false
    }

    /// Appends the NAL units of one payload; false if it is malformed or out of place.
    private mutating func append(_ payload: [UInt8]) -> Bool {
        guard let header = payload.first else { return true }  // e.g. padding-only probe packets
        let type = header & H264NAL.typeMask
        switch type {
        case 1...23:  // §5.6 single NAL unit packet
            guard !inFragment else { return false }
            buffer.append(contentsOf: Self.startCode)
            buffer.append(contentsOf: payload)
            return true
        case H264NAL.stapA:  // §5.7.1: 16-bit size + NAL unit, repeated
            guard !inFragment else { return false }
            var offset = 1
            while offset < payload.count {
                guard offset + 2 <= payload.count else { return false }
                let size = Int(payload[offset]) << 8 | Int(payload[offset + 1])
                offset += 2
                guard size > 0, offset + size <= payload.count else { return false }
                buffer.append(contentsOf: Self.startCode)
                buffer.append(contentsOf: payload[offset..<offset + size])
                offset += size
            }
            return true
        case H264NAL.fuA:  // §5.8
            guard payload.count >= 2 else { return false }
            let fuHeader = payload[1]
            let isStart = fuHeader & 0x80 != 0
            let isEnd = fuHeader & 0x40 != 0
            if isStart {
                guard !inFragment else { return false }
                buffer.append(contentsOf: Self.startCode)
                // The NAL header is rebuilt from the indicator's F and NRI and the FU header's type.
                buffer.append(header & (H264NAL.forbiddenBit | H264NAL.nriMask) | fuHeader & H264NAL.typeMask)
                inFragment = true
            } else {
                guard inFragment else { return false }
            }
            buffer.append(contentsOf: payload[2...])
            if isEnd { inFragment = false }
            return true
        default:  // STAP-B, MTAP, FU-B are not allowed in packetization-mode=1 (§6.3); 0, 30, 31 undefined
            return false
        }
    }
}
