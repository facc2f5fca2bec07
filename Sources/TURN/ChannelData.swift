/// ChannelData messages (RFC 8656 §12.4): a channel number (0x4000–0x7FFF), the length of the
/// application data, the data; over TCP padded to a multiple of 4 bytes (the padding is not
/// counted in the length), over UDP not padded (but a received one may be).
public enum ChannelData {
    public static let channelNumbers: ClosedRange<UInt16> = 0x4000...0x7FFF
    public static let headerLength = 4

    /// First byte 0x40–0x7F: a ChannelData message (RFC 7983 §7 puts TURN channels at 64–79 on a
    /// WebRTC port, where the server only uses 0x4000–0x4FFF; RFC 8656 allows up to 0x7FFF).
    public static func looksLikeChannelData(_ bytes: [UInt8]) -> Bool {
        bytes.count >= headerLength && bytes[0] & 0xC0 == 0x40
    }

    public static func frame(_ payload: [UInt8], channel: UInt16, padded: Bool) -> [UInt8] {
        var out: [UInt8] = []
        let padding = padded ? (4 - payload.count % 4) % 4 : 0
        out.reserveCapacity(headerLength + payload.count + padding)
        out.append(UInt8(channel >> 8))
        out.append(UInt8(truncatingIfNeeded: channel))
        out.append(UInt8(truncatingIfNeeded: payload.count >> 8))
        out.append(UInt8(truncatingIfNeeded: payload.count))
        out.append(contentsOf: payload)
        out.append(contentsOf: repeatElement(0, count: padding))
        return out
    }

    /// The channel and the application data, or nil when the message is not ChannelData, names a
    /// number outside 0x4000–0x7FFF or is shorter than its length field says.
    public static func parse(_ bytes: [UInt8]) -> (channel: UInt16, payload: ArraySlice<UInt8>)? {
        guard looksLikeChannelData(bytes) else { return nil }
        let channel = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
        let length = Int(bytes[2]) << 8 | Int(bytes[3])
        guard channelNumbers.contains(channel), bytes.count >= headerLength + length else { return nil }
        return (channel, bytes[headerLength..<headerLength + length])
    }
}

/// Splits the byte stream of a TCP (or TLS) connection to a TURN server into its messages
/// (RFC 8656 §3.1: no extra framing, each STUN or ChannelData message says how long it is; over a
/// stream ChannelData is padded to 4 bytes). Sans-IO: bytes in as they arrive, whole messages out.
public struct TURNStreamFramer: Sendable {
    public enum FrameLength: Equatable, Sendable {
        /// Not enough bytes yet to tell.
        case incomplete
        /// The first message takes this many bytes of the stream (padding included).
        case complete(Int)
        /// The first two bits are 10 or 11: no TURN message starts like that; the stream is lost.
        case invalid
    }

    /// Pure: how long the message at the start of `stream` is.
    public static func frameLength(of stream: some Collection<UInt8>) -> FrameLength {
        var iterator = stream.makeIterator()
        guard let b0 = iterator.next() else { return .incomplete }
        guard let b1 = iterator.next(), let b2 = iterator.next(), let b3 = iterator.next() else {
            return b0 & 0x80 != 0 ? .invalid : .incomplete
        }
        _ = b1
        let length = Int(b2) << 8 | Int(b3)
        let total: Int
        switch b0 >> 6 {
        case 0b00: total = 20 + length  // STUN: 20-byte header, length a multiple of 4
        case 0b01: total = ChannelData.headerLength + ((length + 3) & ~3)
        default: return .invalid
        }
        return stream.count >= total ? .complete(total) : .incomplete
    }

    private var buffer: [UInt8] = []
    private var start = 0
    public private(set) var isBroken = false

    public init() {}

    /// Appends what the connection read and returns every message now complete, in order.
    public mutating func append(_ bytes: some Collection<UInt8>) -> [[UInt8]] {
        guard !isBroken else { return [] }
        buffer.append(contentsOf: bytes)
        var messages: [[UInt8]] = []
        while true {
            switch Self.frameLength(of: buffer[start...]) {
            case .incomplete:
                if start > 0 { buffer.removeFirst(start); start = 0 }
                return messages
            case let .complete(length):
                messages.append(Array(buffer[start..<start + length]))
                start += length
            case .invalid:
                isBroken = true
                buffer = []
                start = 0
                return messages
            }
        }
    }
}
