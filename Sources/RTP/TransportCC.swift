import RTCBase

/// Transport-wide congestion control feedback, draft-holmer-rmcat-transport-wide-cc-extensions-01
/// §3.1 (RTPFB, FMT 15), parsed into one status per packet.
public struct TransportCCFeedback: Equatable, Sendable {
    public static let format: UInt8 = 15
    /// §3.1.1: the largest run a run-length chunk holds (13 bits).
    static let maxRunLength = 0x1FFF

    /// One reported packet: its transport-wide sequence number and, if it arrived, its receive delta in
    /// 250 µs units relative to the previous received packet (the first: to the reference time).
    public struct PacketStatus: Equatable, Sendable {
        public var sequenceNumber: UInt16
        public var receiveDelta: Int16?

        public init(sequenceNumber: UInt16, receiveDelta: Int16?) {
            self.sequenceNumber = sequenceNumber
            self.receiveDelta = receiveDelta
        }

        public var received: Bool { receiveDelta != nil }
    }

    public var senderSSRC: UInt32
    public var mediaSSRC: UInt32
    public var baseSequenceNumber: UInt16
    /// §3.1: 24-bit signed, in multiples of 64 ms.
    public var referenceTime: Int32
    /// §3.1: counts the feedback packets sent, to detect lost feedback.
    public var feedbackPacketCount: UInt8
    /// Consecutive from `baseSequenceNumber` (the serializer relies on that; the count is
    /// "packet status count", at most 65535).
    public var packets: [PacketStatus]

    public init(senderSSRC: UInt32, mediaSSRC: UInt32, baseSequenceNumber: UInt16, referenceTime: Int32,
                feedbackPacketCount: UInt8, packets: [PacketStatus]) {
        self.senderSSRC = senderSSRC
        self.mediaSSRC = mediaSSRC
        self.baseSequenceNumber = baseSequenceNumber
        self.referenceTime = referenceTime
        self.feedbackPacketCount = feedbackPacketCount
        self.packets = packets
    }

    /// Arrival time of each received packet in µs on the feedback sender's clock: reference time
    /// plus the running sum of the deltas (§3.1.5).
    public var arrivalTimesMicroseconds: [(sequenceNumber: UInt16, microseconds: Int64)] {
        var time = Int64(referenceTime) * 64_000
        var result: [(sequenceNumber: UInt16, microseconds: Int64)] = []
        result.reserveCapacity(packets.count)
        for packet in packets {
            guard let delta = packet.receiveDelta else { continue }
            time += Int64(delta) * 250
            result.append((packet.sequenceNumber, time))
        }
        return result
    }

    // §3.1.1 packet status symbols.
    private enum Symbol: UInt8 {
        case notReceived = 0
        case smallDelta = 1  // one unsigned byte of delta follows
        case largeDelta = 2  // two signed bytes of delta follow
    }

    private static func symbol(for status: PacketStatus) -> Symbol {
        guard let delta = status.receiveDelta else { return .notReceived }
        return (0...255).contains(delta) ? .smallDelta : .largeDelta
    }

    // MARK: Parsing

    init(reader: inout ByteReader) throws(ParseError) {
        senderSSRC = try reader.readUInt32("TWCC sender SSRC")
        mediaSSRC = try reader.readUInt32("TWCC media SSRC")
        baseSequenceNumber = try reader.readUInt16("TWCC base sequence number")
        let statusCount = Int(try reader.readUInt16("TWCC packet status count"))
        let reference = try reader.readUInt24("TWCC reference time")
        referenceTime = Int32(bitPattern: reference << 8) >> 8
        feedbackPacketCount = try reader.readUInt8("TWCC feedback packet count")

        // §3.1.3 / §3.1.4: chunks until every status is known.
        var symbols: [UInt8] = []
        symbols.reserveCapacity(statusCount)
        while symbols.count < statusCount {
            let chunk = try reader.readUInt16("TWCC packet chunk")
            let left = statusCount - symbols.count
            if chunk & 0x8000 == 0 {
                // §3.1.3 run length chunk: T=0, S (2 bits), run length (13 bits).
                let symbol = UInt8(chunk >> 13 & 0x3)
                let run = min(Int(chunk & 0x1FFF), left)
                symbols.append(contentsOf: repeatElement(symbol, count: run))
            } else if chunk & 0x4000 == 0 {
                // §3.1.4 status vector chunk, S=0: fourteen 1-bit symbols (0 not received, 1 small delta).
                for index in 0..<min(14, left) { symbols.append(UInt8(chunk >> (13 - index) & 0x1)) }
            } else {
                // §3.1.4 status vector chunk, S=1: seven 2-bit symbols.
                for index in 0..<min(7, left) { symbols.append(UInt8(chunk >> (12 - 2 * index) & 0x3)) }
            }
        }

        // §3.1.5 receive deltas, one per received packet, in order.
        var packets: [PacketStatus] = []
        packets.reserveCapacity(statusCount)
        var sequence = baseSequenceNumber
        for symbol in symbols {
            var delta: Int16?
            switch symbol {
            case Symbol.notReceived.rawValue: delta = nil
            case Symbol.smallDelta.rawValue: delta = Int16(try reader.readUInt8("TWCC small delta"))
            case Symbol.largeDelta.rawValue: delta = Int16(bitPattern: try reader.readUInt16("TWCC large delta"))
            default: throw .invalid("TWCC reserved status symbol 11 (§3.1.1)")
            }
            packets.append(PacketStatus(sequenceNumber: sequence, receiveDelta: delta))
            sequence &+= 1
        }
        self.packets = packets
    }

    // MARK: Serializing

    /// Chunks are chosen greedily: a run-length chunk for a run of 7 or more equal symbols (or a run
    /// reaching the end), else a 14 × 1-bit vector when no large delta is among the next 14, else a
    /// 7 × 2-bit vector. At most 65535 packets are written.
    func serializeBody(into writer: inout ByteWriter) {
        let statuses = packets.prefix(0xFFFF)
        let count = statuses.count
        writer.write(senderSSRC)
        writer.write(mediaSSRC)
        writer.write(baseSequenceNumber)
        writer.write(UInt16(count))
        writer.writeUInt24(UInt32(bitPattern: referenceTime) & 0xFF_FFFF)
        writer.write(feedbackPacketCount)

        let symbols = statuses.map { Self.symbol(for: $0).rawValue }
        var index = 0
        while index < count {
            let symbol = symbols[index]
            var run = 1
            while index + run < count, run < Self.maxRunLength, symbols[index + run] == symbol { run += 1 }
            if run >= 7 || index + run == count {
                writer.write(UInt16(symbol) << 13 | UInt16(run))  // §3.1.3
                index += run
                continue
            }
            let window = symbols[index..<min(index + 14, count)]
            if !window.contains(Symbol.largeDelta.rawValue) {
                var chunk: UInt16 = 0x8000  // §3.1.4, S=0
                for (offset, value) in window.enumerated() { chunk |= UInt16(value) << (13 - offset) }
                writer.write(chunk)
                index += window.count
            } else {
                var chunk: UInt16 = 0xC000  // §3.1.4, S=1
                let end = min(index + 7, count)
                for position in index..<end { chunk |= UInt16(symbols[position]) << (12 - 2 * (position - index)) }
                writer.write(chunk)
                index = end
            }
        }
        for status in statuses {
            guard let delta = status.receiveDelta else { continue }
            if (0...255).contains(delta) {
                writer.write(UInt8(delta))
            } else {
                writer.write(UInt16(bitPattern: delta))
            }
        }
        // Padding to 32 bits is added by the RTCP serializer.
    }
}
