import RTCBase

/// One RTP header extension element (RFC 8285). Written in the one-byte form (§4.2) when every element
/// of the packet fits it (id 1...14, 1...16 bytes), otherwise in the two-byte form (§4.3).
public struct RTPHeaderExtension: Equatable, Sendable {
    public var id: UInt8
    public var data: [UInt8]

    public init(id: UInt8, data: [UInt8]) {
        self.id = id
        self.data = data
    }

    /// RFC 8285 §4.2: ids 1...14 with 1...16 data bytes fit the one-byte header.
    var fitsOneByteForm: Bool { id >= 1 && id <= 14 && !data.isEmpty && data.count <= 16 }
}

/// An RTP packet (RFC 3550 §5.1) with CSRCs, RFC 8285 header extensions and padding.
public struct RTPPacket: Equatable, Sendable {
    public var payloadType: UInt8
    public var marker: Bool
    public var sequenceNumber: UInt16
    public var timestamp: UInt32
    public var ssrc: UInt32
    public var csrcs: [UInt32]
    public var extensions: [RTPHeaderExtension]
    public var payload: [UInt8]
    /// Padding octets at the end, including the final count octet (RFC 3550 §5.1 "P"); 0 = none.
    public var paddingLength: UInt8

    public init(payloadType: UInt8, marker: Bool = false, sequenceNumber: UInt16, timestamp: UInt32,
                ssrc: UInt32, csrcs: [UInt32] = [], extensions: [RTPHeaderExtension] = [],
                payload: [UInt8] = [], paddingLength: UInt8 = 0) {
        self.payloadType = payloadType
        self.marker = marker
        self.sequenceNumber = sequenceNumber
        self.timestamp = timestamp
        self.ssrc = ssrc
        self.csrcs = csrcs
        self.extensions = extensions
        self.payload = payload
        self.paddingLength = paddingLength
    }

    /// RFC 8285 §4.2 profile of the one-byte header.
    public static let oneByteExtensionProfile: UInt16 = 0xBEDE
    /// RFC 8285 §4.3 profile of the two-byte header (the low 4 bits are "appbits", written as 0).
    public static let twoByteExtensionProfile: UInt16 = 0x1000

    // MARK: Parsing

    public init(parsing datagram: [UInt8]) throws(RTPError) {
        let layout = try RTPLayout(datagram)
        let b = datagram
        marker = b[1] & 0x80 != 0
        payloadType = b[1] & 0x7F
        sequenceNumber = UInt16(b[2]) << 8 | UInt16(b[3])
        timestamp = readUInt32(b, 4)
        ssrc = readUInt32(b, 8)
        let csrcCount = Int(b[0] & 0x0F)
        if csrcCount == 0 {
            csrcs = []
        } else {
            var list: [UInt32] = []
            list.reserveCapacity(csrcCount)
            for index in 0..<csrcCount { list.append(readUInt32(b, 12 + 4 * index)) }
            csrcs = list
        }
        if let range = layout.extensionData {
            extensions = try Self.parseExtensions(b, profile: layout.extensionProfile, range: range)
        } else {
            extensions = []
        }
        payload = Array(b[layout.headerLength..<layout.payloadEnd])
        paddingLength = layout.paddingLength
    }

    /// RFC 8285 §4.2 (one-byte, profile 0xBEDE) and §4.3 (two-byte, profile 0x100X). Other profiles
    /// are not ours to interpret (RFC 3550 §5.3.1) and are skipped.
    private static func parseExtensions(_ b: [UInt8], profile: UInt16, range: Range<Int>)
        throws(RTPError) -> [RTPHeaderExtension]
    {
        var result: [RTPHeaderExtension] = []
        var offset = range.lowerBound
        let end = range.upperBound
        if profile == oneByteExtensionProfile {
            while offset < end {
                let byte = b[offset]
                let id = byte >> 4
                if id == 0 { offset += 1; continue }  // §4.2 padding byte (a non-zero length is ignored)
                if id == 15 { break }  // §4.2: reserved, stop processing the extension block
                let length = Int(byte & 0x0F) + 1
                guard offset + 1 + length <= end else {
                    throw .truncated(context: "one-byte header extension", needed: length, available: end - offset - 1)
                }
                result.append(RTPHeaderExtension(id: id, data: Array(b[offset + 1..<offset + 1 + length])))
                offset += 1 + length
            }
        } else if profile & 0xFFF0 == twoByteExtensionProfile {
            while offset < end {
                let id = b[offset]
                if id == 0 { offset += 1; continue }  // §4.3 padding byte
                guard offset + 2 <= end else {
                    throw .truncated(context: "two-byte header extension", needed: 2, available: end - offset)
                }
                let length = Int(b[offset + 1])
                guard offset + 2 + length <= end else {
                    throw .truncated(context: "two-byte header extension", needed: length, available: end - offset - 2)
                }
                result.append(RTPHeaderExtension(id: id, data: Array(b[offset + 2..<offset + 2 + length])))
                offset += 2 + length
            }
        }
        return result
    }

    /// The data of the first extension element with `id`, if present.
    public func extensionData(id: UInt8) -> [UInt8]? {
        for element in extensions where element.id == id { return element.data }
        return nil
    }

    // MARK: Serializing

    private var usesOneByteExtensions: Bool { extensions.allSatisfy(\.fitsOneByteForm) }

    /// Bytes of the extension elements (without the 4-byte extension header and padding).
    private var extensionElementsSize: Int {
        let perElement = usesOneByteExtensions ? 1 : 2
        var size = 0
        for element in extensions { size += perElement + min(element.data.count, 255) }
        return size
    }

    private var extensionBlockSize: Int {
        extensions.isEmpty ? 0 : 4 + (extensionElementsSize + 3) & ~3
    }

    public var serializedSize: Int {
        12 + 4 * min(csrcs.count, 15) + extensionBlockSize + payload.count + Int(paddingLength)
    }

    public func serialized() -> [UInt8] {
        var writer = ByteWriter(capacity: serializedSize)
        serialize(into: &writer)
        return writer.bytes
    }

    /// RFC 3550 §5.1 fixed header, CSRCs, RFC 8285 extensions, payload, padding. At most 15 CSRCs are
    /// written; two-byte extension data longer than 255 bytes is cut to 255.
    public func serialize(into writer: inout ByteWriter) {
        let csrcCount = min(csrcs.count, 15)
        var first: UInt8 = 0x80 | UInt8(csrcCount)
        if paddingLength > 0 { first |= 0x20 }
        if !extensions.isEmpty { first |= 0x10 }
        writer.write(first)
        writer.write((marker ? 0x80 : 0) | payloadType & 0x7F)
        writer.write(sequenceNumber)
        writer.write(timestamp)
        writer.write(ssrc)
        for index in 0..<csrcCount { writer.write(csrcs[index]) }
        if !extensions.isEmpty {
            let oneByte = usesOneByteExtensions
            let elementsSize = extensionElementsSize
            let padded = (elementsSize + 3) & ~3
            writer.write(oneByte ? Self.oneByteExtensionProfile : Self.twoByteExtensionProfile)
            writer.write(UInt16(truncatingIfNeeded: padded / 4))
            for element in extensions {
                if oneByte {
                    writer.write(element.id << 4 | UInt8(element.data.count - 1))  // RFC 8285 §4.2
                    writer.write(contentsOf: element.data)
                } else {
                    let length = min(element.data.count, 255)  // RFC 8285 §4.3
                    writer.write(element.id)
                    writer.write(UInt8(length))
                    writer.write(contentsOf: element.data[0..<length])
                }
            }
            writer.writeZeros(padded - elementsSize)
        }
        writer.write(contentsOf: payload)
        if paddingLength > 0 {
            writer.writeZeros(Int(paddingLength) - 1)
            writer.write(paddingLength)
        }
    }
}

/// Where the parts of a serialized RTP packet lie, checked against its length (RFC 3550 §5.1, §5.3.1).
/// Shared by the full parser and by byte-level rewriting (RTX).
struct RTPLayout {
    var headerLength: Int
    var payloadEnd: Int
    var paddingLength: UInt8
    var extensionProfile: UInt16
    var extensionData: Range<Int>?

    init(_ b: [UInt8]) throws(RTPError) {
        guard b.count >= 12 else { throw .truncated(context: "RTP header", needed: 12, available: b.count) }
        let version = b[0] >> 6
        guard version == 2 else { throw .unsupportedVersion(version) }
        var offset = 12 + 4 * Int(b[0] & 0x0F)
        guard offset <= b.count else { throw .truncated(context: "RTP CSRC list", needed: offset, available: b.count) }
        extensionProfile = 0
        extensionData = nil
        if b[0] & 0x10 != 0 {  // RFC 3550 §5.3.1 header extension
            guard offset + 4 <= b.count else {
                throw .truncated(context: "RTP extension header", needed: 4, available: b.count - offset)
            }
            extensionProfile = UInt16(b[offset]) << 8 | UInt16(b[offset + 1])
            let length = 4 * (Int(b[offset + 2]) << 8 | Int(b[offset + 3]))
            offset += 4
            guard offset + length <= b.count else {
                throw .truncated(context: "RTP extension data", needed: length, available: b.count - offset)
            }
            extensionData = offset..<offset + length
            offset += length
        }
        headerLength = offset
        payloadEnd = b.count
        paddingLength = 0
        if b[0] & 0x20 != 0 {  // RFC 3550 §5.1: the last octet counts the padding, itself included
            let count = b[b.count - 1]
            guard count > 0, b.count - Int(count) >= offset else { throw .invalidPadding }
            paddingLength = count
            payloadEnd = b.count - Int(count)
        }
    }
}

@inline(__always)
func readUInt32(_ b: [UInt8], _ offset: Int) -> UInt32 {
    UInt32(b[offset]) << 24 | UInt32(b[offset + 1]) << 16 | UInt32(b[offset + 2]) << 8 | UInt32(b[offset + 3])
}
