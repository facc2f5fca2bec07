import RTCBase

/// One RTCP packet (RFC 3550 §6, RFC 4585 §6, RFC 5104 §4.3, REMB, transport-cc). A datagram holds a
/// compound of them (RFC 3550 §6.1) or, with reduced-size RTCP, a single one (RFC 5506 §3).
public enum RTCPPacket: Equatable, Sendable {
    case senderReport(SenderReport)
    case receiverReport(ReceiverReport)
    case sourceDescription([SDESChunk])
    case goodbye(ssrcs: [UInt32], reason: String?)
    /// RFC 4585 §6.2.1
    case genericNACK(GenericNACK)
    /// RFC 4585 §6.3.1
    case pictureLossIndication(senderSSRC: UInt32, mediaSSRC: UInt32)
    /// RFC 5104 §4.3.1
    case fullIntraRequest(FullIntraRequest)
    /// draft-alvestrand-rmcat-remb-03 §2.2
    case receiverEstimatedMaxBitrate(REMB)
    /// draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1
    case transportCC(TransportCCFeedback)
    /// Any other packet type or feedback format; `body` is everything after the 4-byte common header
    /// (padding removed).
    case other(packetType: UInt8, format: UInt8, body: [UInt8])

    // RFC 3550 §12.1, RFC 4585 §6.1 packet types.
    public static let senderReportType: UInt8 = 200
    public static let receiverReportType: UInt8 = 201
    public static let sourceDescriptionType: UInt8 = 202
    public static let goodbyeType: UInt8 = 203
    public static let transportFeedbackType: UInt8 = 205  // RTPFB
    public static let payloadFeedbackType: UInt8 = 206  // PSFB

    /// RFC 5761 §4 demultiplexing on a shared port: the second byte of RTCP (its packet type) is
    /// 192...223, which RTP payload types avoid. Checks the version bits too.
    public static func looksLikeRTCP(_ datagram: [UInt8]) -> Bool {
        datagram.count >= 4 && datagram[0] >> 6 == 2 && (192...223).contains(datagram[1])
    }

    // MARK: Parsing

    /// Parses a compound RTCP datagram (RFC 3550 §6.1) or a reduced-size one (RFC 5506 §3: any single
    /// packet, feedback included). Every packet's version, length and padding are checked (RFC 3550 A.2).
    public static func parseCompound(_ datagram: [UInt8]) throws(RTPError) -> [RTCPPacket] {
        guard !datagram.isEmpty else { throw .truncated(context: "RTCP header", needed: 4, available: 0) }
        var packets: [RTCPPacket] = []
        var offset = 0
        while offset < datagram.count {
            let remaining = datagram.count - offset
            guard remaining >= 4 else { throw .truncated(context: "RTCP header", needed: 4, available: remaining) }
            // RFC 3550 §6.4.1 common header: V=2, P, count/FMT (5 bits), PT, length in words minus one.
            let first = datagram[offset]
            let version = first >> 6
            guard version == 2 else { throw .unsupportedVersion(version) }
            let packetType = datagram[offset + 1]
            let length = 4 * ((Int(datagram[offset + 2]) << 8 | Int(datagram[offset + 3])) + 1)
            guard length <= remaining else { throw .invalidLength(declared: length, available: remaining) }
            var bodyEnd = offset + length
            if first & 0x20 != 0 {
                let padding = Int(datagram[bodyEnd - 1])
                guard padding > 0, padding <= length - 4 else { throw .invalidPadding }
                bodyEnd -= padding
            }
            let body = offset + 4..<bodyEnd
            do {
                packets.append(try parseBody(datagram, packetType: packetType, count: first & 0x1F, body: body))
            } catch {
                throw RTPError(error)
            }
            offset += length
        }
        return packets
    }

    private static func parseBody(_ datagram: [UInt8], packetType: UInt8, count: UInt8, body: Range<Int>)
        throws(ParseError) -> RTCPPacket
    {
        var reader = ByteReader(datagram, range: body)
        switch packetType {
        case senderReportType:
            return .senderReport(try SenderReport(reader: &reader, blockCount: Int(count)))
        case receiverReportType:
            return .receiverReport(try ReceiverReport(reader: &reader, blockCount: Int(count)))
        case sourceDescriptionType:
            return .sourceDescription(try SDESChunk.parseChunks(reader: &reader, count: Int(count)))
        case goodbyeType:
            return try parseGoodbye(reader: &reader, count: Int(count))
        case transportFeedbackType where count == GenericNACK.format:
            return .genericNACK(try GenericNACK(reader: &reader))
        case transportFeedbackType where count == TransportCCFeedback.format:
            return .transportCC(try TransportCCFeedback(reader: &reader))
        case payloadFeedbackType where count == 1:
            // RFC 4585 §6.3.1: PLI has no FCI.
            let sender = try reader.readUInt32("PLI sender SSRC")
            let media = try reader.readUInt32("PLI media SSRC")
            return .pictureLossIndication(senderSSRC: sender, mediaSSRC: media)
        case payloadFeedbackType where count == FullIntraRequest.format:
            return .fullIntraRequest(try FullIntraRequest(reader: &reader))
        case payloadFeedbackType where count == REMB.format && REMB.hasIdentifier(reader):
            return .receiverEstimatedMaxBitrate(try REMB(reader: &reader))
        default:
            return .other(packetType: packetType, format: count, body: reader.readRemaining())
        }
    }

    /// RFC 3550 §6.6: SSRC list, then an optional length-prefixed reason.
    private static func parseGoodbye(reader: inout ByteReader, count: Int) throws(ParseError) -> RTCPPacket {
        var ssrcs: [UInt32] = []
        ssrcs.reserveCapacity(count)
        for _ in 0..<count { ssrcs.append(try reader.readUInt32("BYE SSRC")) }
        var reason: String?
        if !reader.isAtEnd {
            let length = Int(try reader.readUInt8("BYE reason length"))
            reason = String(decoding: try reader.readBytes(length, "BYE reason"), as: UTF8.self)
        }
        return .goodbye(ssrcs: ssrcs, reason: reason)
    }

    // MARK: Serializing

    public func serialized() -> [UInt8] {
        var writer = ByteWriter(capacity: 64)
        serialize(into: &writer)
        return writer.bytes
    }

    /// Concatenates packets into one compound datagram (RFC 3550 §6.1). Put an SR or RR first unless
    /// reduced-size RTCP was negotiated (RFC 5506).
    public static func compound(_ packets: [RTCPPacket]) -> [UInt8] {
        var writer = ByteWriter(capacity: 64 * packets.count)
        for packet in packets { packet.serialize(into: &writer) }
        return writer.bytes
    }

    /// Appends the packet with its common header (RFC 3550 §6.4.1), padded to 32 bits. Lists longer
    /// than the 5-bit count allows (31 report blocks, SDES chunks or BYE SSRCs) are cut to 31.
    public func serialize(into writer: inout ByteWriter) {
        let start = writer.count
        switch self {
        case let .senderReport(report):
            let blocks = report.reportBlocks.prefix(31)
            writeHeader(&writer, count: blocks.count, type: Self.senderReportType)
            writer.write(report.ssrc)
            writer.write(report.ntpTimestamp)  // RFC 3550 §6.4.1 sender info
            writer.write(report.rtpTimestamp)
            writer.write(report.packetCount)
            writer.write(report.octetCount)
            for block in blocks { block.serialize(into: &writer) }
        case let .receiverReport(report):
            let blocks = report.reportBlocks.prefix(31)
            writeHeader(&writer, count: blocks.count, type: Self.receiverReportType)
            writer.write(report.ssrc)
            for block in blocks { block.serialize(into: &writer) }
        case let .sourceDescription(chunks):
            let used = chunks.prefix(31)
            writeHeader(&writer, count: used.count, type: Self.sourceDescriptionType)
            for chunk in used { chunk.serialize(into: &writer) }
        case let .goodbye(ssrcs, reason):
            let used = ssrcs.prefix(31)
            writeHeader(&writer, count: used.count, type: Self.goodbyeType)
            for ssrc in used { writer.write(ssrc) }
            if let reason {
                let text = Array(reason.utf8.prefix(255))
                writer.write(UInt8(text.count))
                writer.write(contentsOf: text)
            }
        case let .genericNACK(nack):
            writeHeader(&writer, count: Int(GenericNACK.format), type: Self.transportFeedbackType)
            nack.serializeBody(into: &writer)
        case let .pictureLossIndication(sender, media):
            writeHeader(&writer, count: 1, type: Self.payloadFeedbackType)
            writer.write(sender)
            writer.write(media)
        case let .fullIntraRequest(fir):
            writeHeader(&writer, count: Int(FullIntraRequest.format), type: Self.payloadFeedbackType)
            fir.serializeBody(into: &writer)
        case let .receiverEstimatedMaxBitrate(remb):
            writeHeader(&writer, count: Int(REMB.format), type: Self.payloadFeedbackType)
            remb.serializeBody(into: &writer)
        case let .transportCC(feedback):
            writeHeader(&writer, count: Int(TransportCCFeedback.format), type: Self.transportFeedbackType)
            feedback.serializeBody(into: &writer)
        case let .other(packetType, format, body):
            writeHeader(&writer, count: Int(format), type: packetType)
            writer.write(contentsOf: body)
        }
        let padding = (4 - (writer.count - start) % 4) % 4
        if padding > 0, case .transportCC = self {
            // Transport-cc deltas end unaligned: pad with the P bit like libwebrtc (RFC 3550 §6.4.1 "P").
            writer.writeZeros(padding - 1)
            writer.write(UInt8(padding))
            writer.bytes[start] |= 0x20
        } else {
            writer.writeZeros(padding)  // SDES/BYE items end with zero padding (RFC 3550 §6.5, §6.6)
        }
        let words = (writer.count - start) / 4 - 1
        writer.patch(UInt16(truncatingIfNeeded: words), at: start + 2)
    }

    private func writeHeader(_ writer: inout ByteWriter, count: Int, type: UInt8) {
        writer.write(0x80 | UInt8(count & 0x1F))
        writer.write(type)
        writer.write(UInt16(0))  // length, patched at the end
    }
}

// MARK: - Reports (RFC 3550 §6.4)

/// RFC 3550 §6.4.1 report block.
public struct ReportBlock: Equatable, Sendable {
    public var ssrc: UInt32
    /// Fraction of packets lost since the previous report, in 1/256.
    public var fractionLost: UInt8
    /// Cumulative number of packets lost (24-bit signed on the wire; duplicates can make it negative).
    public var cumulativeLost: Int32
    /// Extended highest sequence number received (cycles << 16 | highest seq).
    public var highestSequence: UInt32
    /// Interarrival jitter in RTP timestamp units (RFC 3550 §6.4.1, A.8).
    public var jitter: UInt32
    /// Middle 32 bits of the NTP timestamp of the last SR received (LSR), 0 if none.
    public var lastSR: UInt32
    /// Delay since that SR in 1/65536 s (DLSR), 0 if none.
    public var delaySinceLastSR: UInt32

    public init(ssrc: UInt32, fractionLost: UInt8, cumulativeLost: Int32, highestSequence: UInt32,
                jitter: UInt32, lastSR: UInt32, delaySinceLastSR: UInt32) {
        self.ssrc = ssrc
        self.fractionLost = fractionLost
        self.cumulativeLost = cumulativeLost
        self.highestSequence = highestSequence
        self.jitter = jitter
        self.lastSR = lastSR
        self.delaySinceLastSR = delaySinceLastSR
    }

    init(reader: inout ByteReader) throws(ParseError) {
        ssrc = try reader.readUInt32("report block SSRC")
        fractionLost = try reader.readUInt8("fraction lost")
        let lost = try reader.readUInt24("cumulative lost")
        cumulativeLost = Int32(bitPattern: lost << 8) >> 8  // sign-extend the 24-bit field
        highestSequence = try reader.readUInt32("extended highest sequence")
        jitter = try reader.readUInt32("jitter")
        lastSR = try reader.readUInt32("LSR")
        delaySinceLastSR = try reader.readUInt32("DLSR")
    }

    func serialize(into writer: inout ByteWriter) {
        writer.write(ssrc)
        writer.write(fractionLost)
        let clamped = min(max(cumulativeLost, -0x80_0000), 0x7F_FFFF)
        writer.writeUInt24(UInt32(bitPattern: clamped) & 0xFF_FFFF)
        writer.write(highestSequence)
        writer.write(jitter)
        writer.write(lastSR)
        writer.write(delaySinceLastSR)
    }

    /// RFC 3550 §6.4.1 (Figure 2): round-trip time = A − LSR − DLSR, with A the compact NTP time at
    /// which this report arrived. Nil when the peer has no SR of ours yet or the result is negative.
    public func roundTripTime(arrival: NTPTime) -> Duration? {
        guard lastSR != 0 else { return nil }
        let rtt = arrival.middle32 &- lastSR &- delaySinceLastSR
        guard Int32(bitPattern: rtt) >= 0 else { return nil }
        return .nanoseconds(Int64(rtt) * 1_000_000_000 / 65536)
    }
}

/// RFC 3550 §6.4.1 SR: sender info and report blocks.
public struct SenderReport: Equatable, Sendable {
    public var ssrc: UInt32
    public var ntpTimestamp: UInt64
    public var rtpTimestamp: UInt32
    public var packetCount: UInt32
    public var octetCount: UInt32
    public var reportBlocks: [ReportBlock]

    public init(ssrc: UInt32, ntpTimestamp: UInt64, rtpTimestamp: UInt32, packetCount: UInt32,
                octetCount: UInt32, reportBlocks: [ReportBlock] = []) {
        self.ssrc = ssrc
        self.ntpTimestamp = ntpTimestamp
        self.rtpTimestamp = rtpTimestamp
        self.packetCount = packetCount
        self.octetCount = octetCount
        self.reportBlocks = reportBlocks
    }

    /// Profile-specific extensions after the blocks are ignored (RFC 3550 §6.4.1).
    init(reader: inout ByteReader, blockCount: Int) throws(ParseError) {
        ssrc = try reader.readUInt32("SR SSRC")
        ntpTimestamp = try reader.readUInt64("SR NTP timestamp")
        rtpTimestamp = try reader.readUInt32("SR RTP timestamp")
        packetCount = try reader.readUInt32("SR packet count")
        octetCount = try reader.readUInt32("SR octet count")
        reportBlocks = try readReportBlocks(&reader, count: blockCount)
    }
}

/// RFC 3550 §6.4.2 RR.
public struct ReceiverReport: Equatable, Sendable {
    public var ssrc: UInt32
    public var reportBlocks: [ReportBlock]

    public init(ssrc: UInt32, reportBlocks: [ReportBlock] = []) {
        self.ssrc = ssrc
        self.reportBlocks = reportBlocks
    }

    init(reader: inout ByteReader, blockCount: Int) throws(ParseError) {
        ssrc = try reader.readUInt32("RR SSRC")
        reportBlocks = try readReportBlocks(&reader, count: blockCount)
    }
}

private func readReportBlocks(_ reader: inout ByteReader, count: Int) throws(ParseError) -> [ReportBlock] {
    var blocks: [ReportBlock] = []
    blocks.reserveCapacity(count)
    for _ in 0..<count { blocks.append(try ReportBlock(reader: &reader)) }
    return blocks
}

// MARK: - SDES (RFC 3550 §6.5)

/// One SDES item: type (1 = CNAME, RFC 3550 §6.5.1) and up to 255 bytes of text.
public struct SDESItem: Equatable, Sendable {
    public var type: UInt8
    public var value: [UInt8]

    public static let cnameType: UInt8 = 1

    public init(type: UInt8, value: [UInt8]) {
        self.type = type
        self.value = value
    }
}

/// RFC 3550 §6.5: an SSRC and its items.
public struct SDESChunk: Equatable, Sendable {
    public var ssrc: UInt32
    public var items: [SDESItem]

    public init(ssrc: UInt32, items: [SDESItem]) {
        self.ssrc = ssrc
        self.items = items
    }

    public init(ssrc: UInt32, cname: String) {
        self.init(ssrc: ssrc, items: [SDESItem(type: SDESItem.cnameType, value: Array(cname.utf8))])
    }

    /// RFC 3550 §6.5.1 CNAME, if the chunk has one.
    public var cname: String? {
        for item in items where item.type == SDESItem.cnameType {
            return String(decoding: item.value, as: UTF8.self)
        }
        return nil
    }

    /// Each chunk starts on a 32-bit boundary; its item list ends with a null octet and padding.
    static func parseChunks(reader: inout ByteReader, count: Int) throws(ParseError) -> [SDESChunk] {
        let bodyStart = reader.offset
        var chunks: [SDESChunk] = []
        for _ in 0..<count {
            let ssrc = try reader.readUInt32("SDES SSRC")
            var items: [SDESItem] = []
            while !reader.isAtEnd {
                let type = try reader.readUInt8("SDES item type")
                if type == 0 { break }  // end of the item list
                let length = Int(try reader.readUInt8("SDES item length"))
                items.append(SDESItem(type: type, value: try reader.readBytes(length, "SDES item")))
            }
            let misalignment = (reader.offset - bodyStart) % 4
            if misalignment != 0 { try reader.skip(min(4 - misalignment, reader.remaining)) }
            chunks.append(SDESChunk(ssrc: ssrc, items: items))
        }
        return chunks
    }

    func serialize(into writer: inout ByteWriter) {
        let start = writer.count
        writer.write(ssrc)
        for item in items where item.type != 0 {
            let value = item.value.prefix(255)
            writer.write(item.type)
            writer.write(UInt8(value.count))
            writer.write(contentsOf: value)
        }
        // At least one null octet ends the list, then pad to 32 bits (RFC 3550 §6.5).
        let used = writer.count - start + 1
        writer.writeZeros(1 + (4 - used % 4) % 4)
    }
}
