import RTCBase

/// The class bits of the message type (RFC 8489 §5).
public enum STUNClass: Sendable {
    case request, indication, successResponse, errorResponse

    var bits: UInt16 {
        switch self {
        case .request: return 0b00
        case .indication: return 0b01
        case .successResponse: return 0b10
        case .errorResponse: return 0b11
        }
    }

    init(bits: UInt16) {
        switch bits & 0b11 {
        case 0b00: self = .request
        case 0b01: self = .indication
        case 0b10: self = .successResponse
        default: self = .errorResponse
        }
    }
}

/// A STUN message (RFC 8489 §5): header plus attributes in wire order.
public struct STUNMessage: Equatable, Sendable {
    public static let magicCookie: UInt32 = 0x2112_A442
    public static let bindingMethod: UInt16 = 0x0001
    public static let headerLength = 20
    /// RFC 8489 §14.7: the CRC-32 is XOR-ed with this so that it differs from other CRC users.
    public static let fingerprintXOR: UInt32 = 0x5354_554E

    public var method: UInt16
    public var messageClass: STUNClass
    public var transactionID: [UInt8]
    public var attributes: [STUNAttribute]

    public init(method: UInt16 = STUNMessage.bindingMethod, messageClass: STUNClass, transactionID: [UInt8],
                attributes: [STUNAttribute] = []) {
        self.method = method
        self.messageClass = messageClass
        self.transactionID = transactionID
        self.attributes = attributes
    }

    /// RFC 7983 §7: first byte 0...3 means STUN (on a WebRTC port, where only methods up to 0x0FF
    /// occur); the magic cookie (RFC 8489 §5) confirms it. Parsing itself accepts any method.
    public static func looksLikeSTUN(_ datagram: [UInt8]) -> Bool {
        datagram.count >= headerLength && datagram[0] <= 3
            && datagram[4] == 0x21 && datagram[5] == 0x12 && datagram[6] == 0xA4 && datagram[7] == 0x42
    }

    /// Parses and validates a whole datagram (RFC 8489 §6.3). Attributes after MESSAGE-INTEGRITY other
    /// than FINGERPRINT are ignored (RFC 8489 §14.5); nothing may follow FINGERPRINT (§14.7).
    /// Integrity and fingerprint values are only decoded here: check them with `hasValidIntegrity`
    /// and `hasValidFingerprint`.
    public init(parsing datagram: [UInt8]) throws(STUNError) {
        try Self.validateHeader(datagram)
        let messageType = UInt16(datagram[0]) << 8 | UInt16(datagram[1])
        // RFC 8489 §5: method bits M0-M11 are interleaved with the class bits C0 (bit 4) and C1 (bit 8).
        method = (messageType & 0x000F) | (messageType >> 1 & 0x0070) | (messageType >> 2 & 0x0F80)
        messageClass = STUNClass(bits: (messageType >> 4 & 0b01) | (messageType >> 7 & 0b10))
        let transactionID = datagram[8..<20]
        self.transactionID = Array(transactionID)
        attributes = []
        var sawIntegrity = false, sawFingerprint = false
        var walker = RawAttributeWalker(datagram)
        while let raw = try walker.next() {
            if sawFingerprint { throw .attributeAfterFingerprint }
            if sawIntegrity && raw.type != STUNAttribute.TypeCode.fingerprint { continue }
            let attribute = try STUNAttribute(type: raw.type, value: datagram[raw.value], transactionID: transactionID)
            switch attribute {
            case .messageIntegrity: sawIntegrity = true
            case .fingerprint: sawFingerprint = true
            default: break
            }
            attributes.append(attribute)
        }
    }

    /// The wire bytes. Any `.messageIntegrity`/`.fingerprint` in `attributes` is left out and replaced:
    /// with `integrityKey` a MESSAGE-INTEGRITY is computed (RFC 8489 §14.5; short-term credentials:
    /// the key is the password's bytes, §9.1.1), then with `fingerprint` a FINGERPRINT (§14.7).
    public func serialized(integrityKey: [UInt8]?, fingerprint: Bool) -> [UInt8] {
        let transactionID = Array(self.transactionID.prefix(12)) + repeatElement(0, count: max(0, 12 - self.transactionID.count))
        var w = ByteWriter(capacity: 128)
        // RFC 8489 §5: the class bits C0 and C1 sit between the method's bits. One typed step at a
        // time: as a single expression Swift 6.2 gives up type-checking it ("unable to type-check
        // this expression in reasonable time").
        let method: UInt16 = self.method & 0x0FFF, classBits: UInt16 = messageClass.bits
        let methodBits: UInt16 = (method & 0x000F) | ((method & 0x0070) << 1) | ((method & 0x0F80) << 2)
        let classField: UInt16 = ((classBits & 0b01) << 4) | ((classBits & 0b10) << 7)
        w.write(methodBits | classField)
        w.write(UInt16(0))  // length, patched below
        w.write(Self.magicCookie)
        w.write(contentsOf: transactionID)
        for attribute in attributes {
            switch attribute {
            case .messageIntegrity, .fingerprint: continue
            default: Self.append(attribute.type, attribute.encodedValue(transactionID: transactionID), to: &w)
            }
        }
        if let integrityKey {
            // RFC 8489 §14.5: the HMAC covers the header (its length field already counting the
            // MESSAGE-INTEGRITY attribute) and all attributes before it.
            let integrityStart = w.count
            w.patch(UInt16(truncatingIfNeeded: integrityStart - Self.headerLength + 24), at: 2)
            let mac = HMACSHA1.authenticationCode(key: integrityKey, message: w.bytes)
            Self.append(STUNAttribute.TypeCode.messageIntegrity, mac, to: &w)
        }
        if fingerprint {
            // RFC 8489 §14.7: CRC-32 of everything before it, length field counting the FINGERPRINT.
            w.patch(UInt16(truncatingIfNeeded: w.count - Self.headerLength + 8), at: 2)
            let crc = CRC32.checksum(w.bytes) ^ Self.fingerprintXOR
            var value = ByteWriter(capacity: 4)
            value.write(crc)
            Self.append(STUNAttribute.TypeCode.fingerprint, value.bytes, to: &w)
        }
        w.patch(UInt16(truncatingIfNeeded: w.count - Self.headerLength), at: 2)
        return w.bytes
    }

    /// RFC 8489 §14.5: recomputes the HMAC-SHA1 over the message up to the first MESSAGE-INTEGRITY,
    /// with the length field set as if that attribute were the last, and compares in constant time.
    /// Attributes after it (only FINGERPRINT is meaningful there) are not covered and do not matter.
    public static func hasValidIntegrity(_ datagram: [UInt8], key: [UInt8]) -> Bool {
        guard (try? validateHeader(datagram)) != nil else { return false }
        var walker = RawAttributeWalker(datagram)
        while let raw = try? walker.next() {
            guard raw.type == STUNAttribute.TypeCode.messageIntegrity else { continue }
            guard raw.value.count == SHA1.digestLength else { return false }
            var hmac = HMACSHA1(key: key)
            let adjustedLength = UInt16(truncatingIfNeeded: raw.start - headerLength + 4 + SHA1.digestLength)
            hmac.update(datagram[0..<2])
            hmac.update([UInt8(adjustedLength >> 8), UInt8(truncatingIfNeeded: adjustedLength)])
            hmac.update(datagram[4..<raw.start])
            let expected = hmac.finalize()
            var difference: UInt8 = 0
            for (a, b) in zip(expected, datagram[raw.value]) { difference |= a ^ b }
            return difference == 0
        }
        return false
    }

    /// RFC 8489 §14.7: FINGERPRINT must be the last attribute and equal CRC-32(message before it) ⊕ 0x5354554E.
    public static func hasValidFingerprint(_ datagram: [UInt8]) -> Bool {
        guard (try? validateHeader(datagram)) != nil else { return false }
        var walker = RawAttributeWalker(datagram)
        var last: RawAttribute?
        do {
            while let raw = try walker.next() { last = raw }
        } catch { return false }
        guard let last, last.type == STUNAttribute.TypeCode.fingerprint, last.value.count == 4 else { return false }
        return datagram.bigEndianUInt32(at: last.value.lowerBound)
            == CRC32.checksum(datagram[0..<last.start]) ^ fingerprintXOR
    }

    // MARK: - Convenience accessors (first occurrence)

    public var username: String? { attributes.lazy.compactMap { if case let .username(v) = $0 { v } else { nil } }.first }
    public var messageIntegrity: [UInt8]? { attributes.lazy.compactMap { if case let .messageIntegrity(v) = $0 { v } else { nil } }.first }
    public var fingerprint: UInt32? { attributes.lazy.compactMap { if case let .fingerprint(v) = $0 { v } else { nil } }.first }
    public var xorMappedAddress: TransportAddress? { attributes.lazy.compactMap { if case let .xorMappedAddress(v) = $0 { v } else { nil } }.first }
    public var priority: UInt32? { attributes.lazy.compactMap { if case let .priority(v) = $0 { v } else { nil } }.first }
    public var iceControlling: UInt64? { attributes.lazy.compactMap { if case let .iceControlling(v) = $0 { v } else { nil } }.first }
    public var iceControlled: UInt64? { attributes.lazy.compactMap { if case let .iceControlled(v) = $0 { v } else { nil } }.first }
    public var software: String? { attributes.lazy.compactMap { if case let .software(v) = $0 { v } else { nil } }.first }
    public var hasUseCandidate: Bool { attributes.contains(.useCandidate) }
    public var errorCode: (code: Int, reason: String)? {
        attributes.lazy.compactMap { if case let .errorCode(code, reason) = $0 { (code, reason) } else { nil } }.first
    }

    /// Unknown comprehension-required attribute types (RFC 8489 §6.3.1: answered with 420).
    public var unknownComprehensionRequiredTypes: [UInt16] {
        attributes.compactMap { if case let .unknown(type, _) = $0, type < 0x8000 { type } else { nil } }
    }

    // MARK: - Wire helpers

    /// RFC 8489 §6.3: first two bits zero, magic cookie, length a multiple of 4 matching the datagram.
    static func validateHeader(_ datagram: [UInt8]) throws(STUNError) {
        guard datagram.count >= headerLength else { throw .tooShort(length: datagram.count) }
        guard datagram[0] & 0xC0 == 0, datagram[4] == 0x21, datagram[5] == 0x12, datagram[6] == 0xA4, datagram[7] == 0x42
        else { throw .notSTUN }
        let declared = Int(datagram[2]) << 8 | Int(datagram[3])
        guard declared % 4 == 0, headerLength + declared == datagram.count else {
            throw .lengthMismatch(declared: declared, actual: datagram.count - headerLength)
        }
    }

    /// RFC 8489 §14: type, length, value, padding to a multiple of 4 bytes.
    private static func append(_ type: UInt16, _ value: [UInt8], to w: inout ByteWriter) {
        w.write(type)
        w.write(UInt16(truncatingIfNeeded: value.count))
        w.write(contentsOf: value)
        w.writeZeros((4 - value.count % 4) % 4)
    }
}

/// An attribute's location in a datagram: `start` is its header, `value` excludes padding.
struct RawAttribute {
    var type: UInt16
    var start: Int
    var value: Range<Int>
}

/// Walks the TLV attributes of a datagram whose header was validated, without copying.
struct RawAttributeWalker {
    private let datagram: [UInt8]
    private var offset = STUNMessage.headerLength

    init(_ datagram: [UInt8]) { self.datagram = datagram }

    mutating func next() throws(STUNError) -> RawAttribute? {
        guard offset < datagram.count else { return nil }
        guard datagram.count - offset >= 4 else { throw .truncatedAttribute(type: 0) }
        let type = UInt16(datagram[offset]) << 8 | UInt16(datagram[offset + 1])
        let length = Int(datagram[offset + 2]) << 8 | Int(datagram[offset + 3])
        let valueStart = offset + 4, paddedLength = (length + 3) & ~3
        guard datagram.count - valueStart >= paddedLength else { throw .truncatedAttribute(type: type) }
        defer { offset = valueStart + paddedLength }
        return RawAttribute(type: type, start: offset, value: valueStart..<valueStart + length)
    }
}
