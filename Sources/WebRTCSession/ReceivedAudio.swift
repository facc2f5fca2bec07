import RTCBase
import RTP

/// An Opus packet a talking viewer sent (talkback, issue 17): SRTP-verified and decrypted, parsed,
/// of the negotiated payload type. The header fields a jitter buffer needs, and the payload.
public struct ReceivedAudioPacket: Equatable, Sendable {
    public var ssrc: UInt32
    public var sequenceNumber: UInt16
    public var timestamp: UInt32
    public var payload: [UInt8]
    public var arrival: MonotonicTime

    public init(ssrc: UInt32, sequenceNumber: UInt16, timestamp: UInt32, payload: [UInt8], arrival: MonotonicTime) {
        self.ssrc = ssrc
        self.sequenceNumber = sequenceNumber
        self.timestamp = timestamp
        self.payload = payload
        self.arrival = arrival
    }

    /// Parses a decrypted RTP packet; nil unless it carries `payloadType` and a payload.
    static func parse(_ plain: [UInt8], payloadType: UInt8, arrival: MonotonicTime) -> ReceivedAudioPacket? {
        guard let packet = try? RTPPacket(parsing: plain), packet.payloadType == payloadType, !packet.payload.isEmpty
        else { return nil }
        return ReceivedAudioPacket(ssrc: packet.ssrc, sequenceNumber: packet.sequenceNumber, timestamp: packet.timestamp,
                                   payload: packet.payload, arrival: arrival)
    }
}
