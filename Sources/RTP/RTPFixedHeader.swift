/// The 12-byte fixed RTP header (RFC 3550 §5.1) of the packets rtcam sends: version 2, no padding,
/// no extension, no CSRCs. Written in place, so the send path never copies a payload to put a header
/// in front of it (RTPPacket is the general, parsed form).
public enum RTPFixedHeader {
    public static let size = 12

    /// Writes the header over the first 12 bytes of `packet` (the packetizer leaves that room).
    public static func write(into packet: inout [UInt8], payloadType: UInt8, marker: Bool, sequenceNumber: UInt16,
                             timestamp: UInt32, ssrc: UInt32) {
        precondition(packet.count >= size, "no room for the RTP header")
        packet.withUnsafeMutableBytes { bytes in
            bytes[0] = 0x80   // V=2, no padding, no extension, no CSRCs
            bytes[1] = (marker ? 0x80 : 0) | (payloadType & 0x7F)
            bytes.storeBytes(of: sequenceNumber.bigEndian, toByteOffset: 2, as: UInt16.self)
            bytes.storeBytes(of: timestamp.bigEndian, toByteOffset: 4, as: UInt32.self)
            bytes.storeBytes(of: ssrc.bigEndian, toByteOffset: 8, as: UInt32.self)
        }
    }

    /// The header followed by `payload`.
    public static func serialized(payloadType: UInt8, marker: Bool, sequenceNumber: UInt16, timestamp: UInt32,
                                  ssrc: UInt32, payload: [UInt8]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(size + payload.count)
        bytes.append(contentsOf: repeatElement(0, count: size))
        bytes.append(contentsOf: payload)
        write(into: &bytes, payloadType: payloadType, marker: marker, sequenceNumber: sequenceNumber,
              timestamp: timestamp, ssrc: ssrc)
        return bytes
    }

    /// Replaces the 7-bit payload type of a serialized packet's header, keeping the marker bit.
    public static func setPayloadType(_ payloadType: UInt8, in header: UnsafeMutableRawBufferPointer) {
        header[1] = (header[1] & 0x80) | (payloadType & 0x7F)
    }

    public static func setPayloadType(_ payloadType: UInt8, in packet: inout [UInt8]) {
        packet.withUnsafeMutableBytes { setPayloadType(payloadType, in: $0) }
    }

    /// Replaces the sequence number, and adds `timestampShift` to the timestamp, of a serialized
    /// packet's header: a viewer moved between two encodings sees one continuous stream (issue 24).
    public static func setSequenceNumber(_ sequenceNumber: UInt16, shiftingTimestampBy timestampShift: UInt32,
                                         in header: UnsafeMutableRawBufferPointer) {
        header.storeBytes(of: sequenceNumber.bigEndian, toByteOffset: 2, as: UInt16.self)
        guard timestampShift != 0 else { return }
        let timestamp = UInt32(bigEndian: header.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        header.storeBytes(of: (timestamp &+ timestampShift).bigEndian, toByteOffset: 4, as: UInt32.self)
    }

    public static func setSequenceNumber(_ sequenceNumber: UInt16, shiftingTimestampBy timestampShift: UInt32,
                                         in packet: inout [UInt8]) {
        packet.withUnsafeMutableBytes { setSequenceNumber(sequenceNumber, shiftingTimestampBy: timestampShift, in: $0) }
    }

    /// The sequence number and timestamp of a serialized packet's header.
    public static func sequenceNumberAndTimestamp(ofPacket packet: [UInt8]) -> (sequenceNumber: UInt16, timestamp: UInt32) {
        precondition(packet.count >= size, "no RTP header")
        return (UInt16(packet[2]) << 8 | UInt16(packet[3]),
                UInt32(packet[4]) << 24 | UInt32(packet[5]) << 16 | UInt32(packet[6]) << 8 | UInt32(packet[7]))
    }

    /// Payload bytes of a packet with this header (what Sender Reports count, RFC 3550 §6.4.1).
    public static func payloadSize(ofPacket packet: [UInt8]) -> Int { max(0, packet.count - size) }
}
