import RTCBase

/// One Generic NACK FCI entry (RFC 4585 §6.2.1): a lost packet id and a bitmask of the 16 following
/// sequence numbers that are lost too (bit i set: PID + i + 1 lost).
public struct NACKEntry: Equatable, Sendable {
    public var packetID: UInt16
    public var lostBitmask: UInt16

    public init(packetID: UInt16, lostBitmask: UInt16) {
        self.packetID = packetID
        self.lostBitmask = lostBitmask
    }
}

/// RFC 4585 §6.2.1 Generic NACK (RTPFB, FMT 1).
public struct GenericNACK: Equatable, Sendable {
    public static let format: UInt8 = 1

    public var senderSSRC: UInt32
    public var mediaSSRC: UInt32
    public var lostSequenceNumbers: [UInt16]

    public init(senderSSRC: UInt32, mediaSSRC: UInt32, lostSequenceNumbers: [UInt16]) {
        self.senderSSRC = senderSSRC
        self.mediaSSRC = mediaSSRC
        self.lostSequenceNumbers = lostSequenceNumbers
    }

    /// The FCI entries this NACK is sent as.
    public var entries: [NACKEntry] { Self.entries(forLost: lostSequenceNumbers) }

    /// The fewest FCI entries covering `lost`, given in sending order (wrap-aware, e.g. 65534, 65535, 0):
    /// each entry takes the first uncovered seq as PID and the up to 16 seqs after it into its BLP.
    /// Unordered input is still covered completely, only not minimally.
    public static func entries(forLost lost: [UInt16]) -> [NACKEntry] {
        var result: [NACKEntry] = []
        result.reserveCapacity(lost.count / 4 + 1)
        var current: NACKEntry?
        for seq in lost {
            if var entry = current {
                let distance = seq &- entry.packetID
                if distance == 0 { continue }  // repeated seq
                if distance <= 16 {
                    entry.lostBitmask |= 1 << (distance - 1)
                    current = entry
                    continue
                }
                result.append(entry)
            }
            current = NACKEntry(packetID: seq, lostBitmask: 0)
        }
        if let current { result.append(current) }
        return result
    }

    /// The sequence numbers the entries mark lost, in order (PID, then BLP bits 0...15).
    public static func lostSequenceNumbers(in entries: [NACKEntry]) -> [UInt16] {
        var result: [UInt16] = []
        result.reserveCapacity(entries.count * 2)
        for entry in entries {
            result.append(entry.packetID)
            var mask = entry.lostBitmask
            while mask != 0 {
                let bit = UInt16(mask.trailingZeroBitCount)
                result.append(entry.packetID &+ bit &+ 1)
                mask &= mask - 1
            }
        }
        return result
    }

    init(reader: inout ByteReader) throws(ParseError) {
        senderSSRC = try reader.readUInt32("NACK sender SSRC")
        mediaSSRC = try reader.readUInt32("NACK media SSRC")
        var entries: [NACKEntry] = []
        entries.reserveCapacity(reader.remaining / 4)
        while reader.remaining >= 4 {
            let pid = try reader.readUInt16("NACK PID")
            let blp = try reader.readUInt16("NACK BLP")
            entries.append(NACKEntry(packetID: pid, lostBitmask: blp))
        }
        guard !entries.isEmpty else { throw .invalid("NACK without FCI entries (RFC 4585 §6.2.1)") }
        lostSequenceNumbers = Self.lostSequenceNumbers(in: entries)
    }

    func serializeBody(into writer: inout ByteWriter) {
        writer.write(senderSSRC)
        writer.write(mediaSSRC)
        for entry in entries {
            writer.write(entry.packetID)
            writer.write(entry.lostBitmask)
        }
    }
}

/// RFC 5104 §4.3.1 Full Intra Request (PSFB, FMT 4): one FCI entry per media sender asked for a
/// decoder refresh, each with its own command sequence number (incremented per new request, §4.3.1.2).
public struct FullIntraRequest: Equatable, Sendable {
    public static let format: UInt8 = 4

    public struct Entry: Equatable, Sendable {
        public var ssrc: UInt32
        public var sequenceNumber: UInt8

        public init(ssrc: UInt32, sequenceNumber: UInt8) {
            self.ssrc = ssrc
            self.sequenceNumber = sequenceNumber
        }
    }

    public var senderSSRC: UInt32
    /// RFC 5104 §4.3.1.2: unused, SHALL be 0.
    public var mediaSSRC: UInt32
    public var entries: [Entry]

    public init(senderSSRC: UInt32, mediaSSRC: UInt32 = 0, entries: [Entry]) {
        self.senderSSRC = senderSSRC
        self.mediaSSRC = mediaSSRC
        self.entries = entries
    }

    init(reader: inout ByteReader) throws(ParseError) {
        senderSSRC = try reader.readUInt32("FIR sender SSRC")
        mediaSSRC = try reader.readUInt32("FIR media SSRC")
        var entries: [Entry] = []
        while reader.remaining >= 8 {
            let ssrc = try reader.readUInt32("FIR SSRC")
            let sequence = try reader.readUInt8("FIR seq nr")
            try reader.skip(3, "FIR reserved")
            entries.append(Entry(ssrc: ssrc, sequenceNumber: sequence))
        }
        guard !entries.isEmpty else { throw .invalid("FIR without FCI entries (RFC 5104 §4.3.1.2)") }
        self.entries = entries
    }

    func serializeBody(into writer: inout ByteWriter) {
        writer.write(senderSSRC)
        writer.write(mediaSSRC)
        for entry in entries {
            writer.write(entry.ssrc)
            writer.write(entry.sequenceNumber)
            writer.writeZeros(3)
        }
    }
}

/// Receiver Estimated Maximum Bitrate, draft-alvestrand-rmcat-remb-03 §2.2: PSFB FMT 15 (application
/// layer feedback), media SSRC 0, "REMB", SSRC count, 6-bit exponent, 18-bit mantissa, SSRC list.
public struct REMB: Equatable, Sendable {
    public static let format: UInt8 = 15
    static let identifier: [UInt8] = [0x52, 0x45, 0x4D, 0x42]  // 'R' 'E' 'M' 'B'

    public var senderSSRC: UInt32
    /// Bits per second. Serializing keeps the top 18 significant bits (mantissa × 2^exponent).
    public var bitrate: UInt64
    public var ssrcs: [UInt32]

    public init(senderSSRC: UInt32, bitrate: UInt64, ssrcs: [UInt32]) {
        self.senderSSRC = senderSSRC
        self.bitrate = bitrate
        self.ssrcs = ssrcs
    }

    /// Whether the FCI (after the two SSRCs) starts with "REMB".
    static func hasIdentifier(_ reader: ByteReader) -> Bool {
        let start = reader.offset + 8
        guard reader.endIndex - start >= 4 else { return false }
        return reader.bytes[start] == identifier[0] && reader.bytes[start + 1] == identifier[1]
            && reader.bytes[start + 2] == identifier[2] && reader.bytes[start + 3] == identifier[3]
    }

    init(reader: inout ByteReader) throws(ParseError) {
        senderSSRC = try reader.readUInt32("REMB sender SSRC")
        _ = try reader.readUInt32("REMB media SSRC")
        try reader.skip(4, "REMB identifier")
        let count = Int(try reader.readUInt8("REMB SSRC count"))
        let packed = try reader.readUInt24("REMB bitrate")
        let exponent = Int(packed >> 18)
        let mantissa = UInt64(packed & 0x3_FFFF)
        // mantissa < 2^18, so the shift overflows only when fewer leading zeros remain than the exponent.
        bitrate = mantissa.leadingZeroBitCount >= exponent ? mantissa << exponent : .max
        var ssrcs: [UInt32] = []
        ssrcs.reserveCapacity(count)
        for _ in 0..<count { ssrcs.append(try reader.readUInt32("REMB SSRC")) }
        self.ssrcs = ssrcs
    }

    /// The (exponent, mantissa) pair encoding `bitrate`, rounded down.
    static func encode(_ bitrate: UInt64) -> (exponent: UInt8, mantissa: UInt32) {
        var exponent: UInt8 = 0
        var mantissa = bitrate
        while mantissa > 0x3_FFFF {
            mantissa >>= 1
            exponent += 1
        }
        return (exponent, UInt32(mantissa))
    }

    func serializeBody(into writer: inout ByteWriter) {
        let used = ssrcs.prefix(255)
        let (exponent, mantissa) = Self.encode(bitrate)
        writer.write(senderSSRC)
        writer.write(UInt32(0))
        writer.write(contentsOf: Self.identifier)
        writer.write(UInt8(used.count))
        writer.writeUInt24(UInt32(exponent) << 18 | mantissa)
        for ssrc in used { writer.write(ssrc) }
    }
}
