import RTCBase

/// The STUN attributes rtcam understands; any other is kept as `.unknown` (RFC 8489 §14, RFC 8445 §16.1).
public enum STUNAttribute: Equatable, Sendable {
    case username(String)
    case messageIntegrity([UInt8])
    case fingerprint(UInt32)
    case xorMappedAddress(TransportAddress)
    case priority(UInt32)
    case useCandidate
    case iceControlling(UInt64)
    case iceControlled(UInt64)
    case errorCode(code: Int, reason: String)
    case software(String)
    case unknown(type: UInt16, value: [UInt8])

    /// Attribute type codes (RFC 8489 §18.3, RFC 8445 §16.1).
    public enum TypeCode {
        public static let username: UInt16 = 0x0006
        public static let messageIntegrity: UInt16 = 0x0008
        public static let errorCode: UInt16 = 0x0009
        public static let unknownAttributes: UInt16 = 0x000A
        public static let xorMappedAddress: UInt16 = 0x0020
        public static let priority: UInt16 = 0x0024
        public static let useCandidate: UInt16 = 0x0025
        public static let software: UInt16 = 0x8022
        public static let fingerprint: UInt16 = 0x8028
        public static let iceControlled: UInt16 = 0x8029
        public static let iceControlling: UInt16 = 0x802A
    }

    public var type: UInt16 {
        switch self {
        case .username: return TypeCode.username
        case .messageIntegrity: return TypeCode.messageIntegrity
        case .fingerprint: return TypeCode.fingerprint
        case .xorMappedAddress: return TypeCode.xorMappedAddress
        case .priority: return TypeCode.priority
        case .useCandidate: return TypeCode.useCandidate
        case .iceControlling: return TypeCode.iceControlling
        case .iceControlled: return TypeCode.iceControlled
        case .errorCode: return TypeCode.errorCode
        case .software: return TypeCode.software
        case let .unknown(type, _): return type
        }
    }

    /// RFC 8489 §14: types 0x0000-0x7FFF are comprehension-required.
    public var isComprehensionRequired: Bool { type < 0x8000 }

    // MARK: - Decoding

    /// Decodes one attribute value (without padding). XOR-MAPPED-ADDRESS needs the transaction ID.
    init(type: UInt16, value: ArraySlice<UInt8>, transactionID: ArraySlice<UInt8>) throws(STUNError) {
        func requireLength(_ expected: Int) throws(STUNError) {
            guard value.count == expected else {
                throw .invalidAttribute(type: type, reason: "length \(value.count), expected \(expected)")
            }
        }
        switch type {
        case TypeCode.username:
            // RFC 8489 §14.3: UTF-8; kept strict because the agent compares it byte for byte.
            let text = String(decoding: value, as: UTF8.self)
            guard text.utf8.elementsEqual(value) else { throw .invalidAttribute(type: type, reason: "USERNAME is not UTF-8") }
            self = .username(text)
        case TypeCode.messageIntegrity:
            try requireLength(SHA1.digestLength)  // RFC 8489 §14.5
            self = .messageIntegrity(Array(value))
        case TypeCode.fingerprint:
            try requireLength(4)  // RFC 8489 §14.7
            self = .fingerprint(value.bigEndianUInt32(at: value.startIndex))
        case TypeCode.xorMappedAddress:
            self = .xorMappedAddress(try Self.decodeXORAddress(value, transactionID: transactionID))
        case TypeCode.priority:
            try requireLength(4)  // RFC 8445 §7.1.1
            self = .priority(value.bigEndianUInt32(at: value.startIndex))
        case TypeCode.useCandidate:
            try requireLength(0)  // RFC 8445 §7.1.2
            self = .useCandidate
        case TypeCode.iceControlling, TypeCode.iceControlled:
            try requireLength(8)  // RFC 8445 §7.1.3
            let tieBreaker = UInt64(value.bigEndianUInt32(at: value.startIndex)) << 32
                | UInt64(value.bigEndianUInt32(at: value.startIndex + 4))
            self = type == TypeCode.iceControlling ? .iceControlling(tieBreaker) : .iceControlled(tieBreaker)
        case TypeCode.errorCode:
            // RFC 8489 §14.8: 21 reserved bits, class (3 bits, 3...6), number (0...99), reason phrase.
            guard value.count >= 4 else { throw .invalidAttribute(type: type, reason: "ERROR-CODE shorter than 4 bytes") }
            let errorClass = Int(value[value.startIndex + 2] & 0x07), number = Int(value[value.startIndex + 3])
            guard (3...6).contains(errorClass), number < 100 else {
                throw .invalidAttribute(type: type, reason: "error code \(errorClass)/\(number) out of range")
            }
            self = .errorCode(code: errorClass * 100 + number,
                              reason: String(decoding: value.dropFirst(4), as: UTF8.self))
        case TypeCode.software:
            self = .software(String(decoding: value, as: UTF8.self))  // RFC 8489 §14.14, informative only
        default:
            self = .unknown(type: type, value: Array(value))
        }
    }

    /// RFC 8489 §14.2: X-Port = port ⊕ top 16 bits of the cookie; X-Address = address ⊕ cookie
    /// (IPv4) or ⊕ cookie ‖ transaction ID (IPv6).
    private static func decodeXORAddress(_ value: ArraySlice<UInt8>, transactionID: ArraySlice<UInt8>) throws(STUNError) -> TransportAddress {
        let type = TypeCode.xorMappedAddress
        guard value.count >= 4 else { throw .invalidAttribute(type: type, reason: "shorter than 4 bytes") }
        let family = value[value.startIndex + 1]
        let port = UInt16(value[value.startIndex + 2]) << 8 | UInt16(value[value.startIndex + 3])
        let addressLength = family == 0x01 ? 4 : family == 0x02 ? 16 : 0
        guard addressLength > 0 else { throw .invalidAttribute(type: type, reason: "unknown address family \(family)") }
        guard value.count == 4 + addressLength else {
            throw .invalidAttribute(type: type, reason: "length \(value.count) for family \(family)")
        }
        let mask = xorMask(transactionID: transactionID)
        let address = zip(value.dropFirst(4), mask).map { $0 ^ $1 }
        let ip: TransportAddress.IP = addressLength == 4 ? .v4(address[0], address[1], address[2], address[3]) : .v6(address)
        return TransportAddress(ip: ip, port: port ^ UInt16(STUNMessage.magicCookie >> 16))
    }

    /// The XOR-MAPPED-ADDRESS encoding as a value of its own: TURN's XOR-PEER-ADDRESS and
    /// XOR-RELAYED-ADDRESS use it unchanged (RFC 8656 §18.3, §18.5) and travel as `.unknown` here.
    public static func xorAddressValue(_ address: TransportAddress, transactionID: [UInt8]) -> [UInt8] {
        STUNAttribute.xorMappedAddress(address).encodedValue(transactionID: transactionID)
    }

    /// Decodes a value in the XOR-MAPPED-ADDRESS encoding; nil when malformed.
    public static func xorAddress(fromValue value: [UInt8], transactionID: [UInt8]) -> TransportAddress? {
        try? decodeXORAddress(value[...], transactionID: transactionID[...])
    }

    static func xorMask(transactionID: some Collection<UInt8>) -> [UInt8] {
        let cookie = STUNMessage.magicCookie
        return [UInt8(cookie >> 24), UInt8(truncatingIfNeeded: cookie >> 16),
                UInt8(truncatingIfNeeded: cookie >> 8), UInt8(truncatingIfNeeded: cookie)] + transactionID
    }

    // MARK: - Encoding

    /// The value bytes (without padding). Strings are cut to the RFC 8489 limits.
    func encodedValue(transactionID: [UInt8]) -> [UInt8] {
        var w = ByteWriter(capacity: 32)
        switch self {
        case let .username(name): w.write(contentsOf: name.utf8Prefix(maxBytes: 513))  // RFC 8489 §14.3
        case let .messageIntegrity(mac): w.write(contentsOf: mac)
        case let .fingerprint(crc): w.write(crc)
        case let .xorMappedAddress(address):
            let addressBytes = address.ip.fixedLengthBytes
            w.write(UInt8(0))
            w.write(UInt8(addressBytes.count == 4 ? 0x01 : 0x02))
            w.write(address.port ^ UInt16(STUNMessage.magicCookie >> 16))
            w.write(contentsOf: zip(addressBytes, Self.xorMask(transactionID: transactionID)).map { $0 ^ $1 })
        case let .priority(priority): w.write(priority)
        case .useCandidate: break
        case let .iceControlling(tieBreaker), let .iceControlled(tieBreaker): w.write(tieBreaker)
        case let .errorCode(code, reason):
            let code = min(max(code, 300), 699)
            w.write(UInt16(0))
            w.write(UInt8(code / 100))
            w.write(UInt8(code % 100))
            w.write(contentsOf: reason.utf8Prefix(maxBytes: 763))  // RFC 8489 §14.8
        case let .software(text): w.write(contentsOf: text.utf8Prefix(maxBytes: 763))  // RFC 8489 §14.14
        case let .unknown(_, value): w.write(contentsOf: value.prefix(0xFFFC))
        }
        return w.bytes
    }
}

extension TransportAddress.IP {
    /// 4 bytes for IPv4, exactly 16 for IPv6 (a malformed `.v6` is zero-padded or cut).
    var fixedLengthBytes: [UInt8] {
        switch self {
        case let .v4(a, b, c, d): return [a, b, c, d]
        case let .v6(bytes): return Array(bytes.prefix(16)) + repeatElement(0, count: max(0, 16 - bytes.count))
        }
    }
}

extension String {
    /// The UTF-8 bytes, cut at a character boundary so that at most `maxBytes` remain.
    fileprivate func utf8Prefix(maxBytes: Int) -> [UInt8] {
        if utf8.count <= maxBytes { return Array(utf8) }
        var text = Substring(self)
        while text.utf8.count > maxBytes { text = text.dropLast() }
        return Array(text.utf8)
    }
}

extension Collection<UInt8> where Index == Int {
    /// Callers check the bounds first.
    func bigEndianUInt32(at index: Int) -> UInt32 {
        UInt32(self[index]) << 24 | UInt32(self[index + 1]) << 16 | UInt32(self[index + 2]) << 8 | UInt32(self[index + 3])
    }
}
