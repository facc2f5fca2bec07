/// RFC 4588 retransmission packets (session multiplexing, §4): the RTX stream has its own SSRC,
/// payload type and sequence numbers; the payload starts with the original sequence number (OSN).
public enum RTXPacket {
    /// RFC 4588 §4: copies the original header (marker, timestamp, CSRCs, extensions), puts in the RTX
    /// payload type, SSRC and sequence number, and prefixes the payload with the OSN. The original's
    /// padding is not carried over. Nil if `original` is not a valid RTP packet.
    public static func wrap(original: [UInt8], rtxPayloadType: UInt8, rtxSSRC: UInt32,
                            rtxSequenceNumber: UInt16) -> [UInt8]? {
        guard let layout = try? RTPLayout(original) else { return nil }
        var rtx: [UInt8] = []
        rtx.reserveCapacity(layout.payloadEnd + 2)
        rtx.append(contentsOf: original[0..<layout.headerLength])
        rtx[0] &= ~0x20  // no padding
        rtx[1] = original[1] & 0x80 | rtxPayloadType & 0x7F
        rtx[2] = UInt8(truncatingIfNeeded: rtxSequenceNumber >> 8)
        rtx[3] = UInt8(truncatingIfNeeded: rtxSequenceNumber)
        rtx[8] = UInt8(truncatingIfNeeded: rtxSSRC >> 24)
        rtx[9] = UInt8(truncatingIfNeeded: rtxSSRC >> 16)
        rtx[10] = UInt8(truncatingIfNeeded: rtxSSRC >> 8)
        rtx[11] = UInt8(truncatingIfNeeded: rtxSSRC)
        rtx.append(original[2])  // OSN, §4
        rtx.append(original[3])
        rtx.append(contentsOf: original[layout.headerLength..<layout.payloadEnd])
        return rtx
    }

    /// RFC 4588 §4: the original packet back from an RTX one: sequence number from the OSN, payload
    /// after it, the original payload type and SSRC. Nil if the payload is shorter than the OSN.
    public static func unwrap(_ rtx: RTPPacket, originalPayloadType: UInt8, originalSSRC: UInt32) -> RTPPacket? {
        guard rtx.payload.count >= 2 else { return nil }
        var packet = rtx
        packet.payloadType = originalPayloadType
        packet.ssrc = originalSSRC
        packet.sequenceNumber = UInt16(rtx.payload[0]) << 8 | UInt16(rtx.payload[1])
        packet.payload = Array(rtx.payload[2...])
        packet.paddingLength = 0
        return packet
    }
}
