import RTCBase
import STUN

/// TURN's methods and attributes (RFC 8656 §17–18) on top of the STUN codec. The STUN target decodes
/// these attributes as `.unknown(type:value:)`; the builders and accessors here give them meaning.
public enum TURNMethod {
    public static let allocate: UInt16 = 0x003
    public static let refresh: UInt16 = 0x004
    public static let send: UInt16 = 0x006  // indication only
    public static let data: UInt16 = 0x007  // indication only
    public static let createPermission: UInt16 = 0x008
    public static let channelBind: UInt16 = 0x009
}

public enum TURNAttributeType {
    public static let channelNumber: UInt16 = 0x000C
    public static let lifetime: UInt16 = 0x000D
    public static let xorPeerAddress: UInt16 = 0x0012
    public static let data: UInt16 = 0x0013
    public static let realm: UInt16 = 0x0014
    public static let nonce: UInt16 = 0x0015
    public static let xorRelayedAddress: UInt16 = 0x0016
    public static let requestedTransport: UInt16 = 0x0019
}

/// The error codes a TURN client acts on (RFC 8489 §14.8, RFC 8656 §19).
public enum TURNErrorCode {
    public static let unauthorized = 401
    public static let forbidden = 403
    public static let allocationMismatch = 437
    public static let staleNonce = 438
    public static let wrongCredentials = 441
    public static let unsupportedTransportProtocol = 442
    public static let allocationQuotaReached = 486
    public static let insufficientCapacity = 508
}

extension STUNAttribute {
    /// REQUESTED-TRANSPORT (RFC 8656 §18.7): protocol number (17 = UDP) and three reserved bytes.
    public static let requestedTransportUDP = STUNAttribute.unknown(type: TURNAttributeType.requestedTransport, value: [17, 0, 0, 0])

    /// LIFETIME in seconds (RFC 8656 §18.2).
    public static func lifetime(seconds: UInt32) -> STUNAttribute {
        var w = ByteWriter(capacity: 4)
        w.write(seconds)
        return .unknown(type: TURNAttributeType.lifetime, value: w.bytes)
    }

    /// CHANNEL-NUMBER (RFC 8656 §18.1): the number and two reserved bytes.
    public static func channelNumber(_ channel: UInt16) -> STUNAttribute {
        .unknown(type: TURNAttributeType.channelNumber, value: [UInt8(channel >> 8), UInt8(truncatingIfNeeded: channel), 0, 0])
    }

    /// XOR-PEER-ADDRESS (RFC 8656 §18.3); XORed with the transaction ID of the message it goes in.
    public static func xorPeerAddress(_ peer: TransportAddress, transactionID: [UInt8]) -> STUNAttribute {
        .unknown(type: TURNAttributeType.xorPeerAddress, value: STUNAttribute.xorAddressValue(peer, transactionID: transactionID))
    }

    public static func realm(_ text: String) -> STUNAttribute { .unknown(type: TURNAttributeType.realm, value: Array(text.utf8)) }
    public static func nonce(_ text: String) -> STUNAttribute { .unknown(type: TURNAttributeType.nonce, value: Array(text.utf8)) }
    public static func data(_ bytes: [UInt8]) -> STUNAttribute { .unknown(type: TURNAttributeType.data, value: bytes) }
}

extension STUNMessage {
    /// The value of the first attribute of this type, as the STUN codec kept it.
    public func rawValue(of type: UInt16) -> [UInt8]? {
        attributes.lazy.compactMap { if case let .unknown(t, value) = $0, t == type { value } else { nil } }.first
    }

    public var realm: String? { rawValue(of: TURNAttributeType.realm).map { String(decoding: $0, as: UTF8.self) } }
    public var nonce: String? { rawValue(of: TURNAttributeType.nonce).map { String(decoding: $0, as: UTF8.self) } }
    public var data: [UInt8]? { rawValue(of: TURNAttributeType.data) }

    public var lifetimeSeconds: UInt32? {
        guard let value = rawValue(of: TURNAttributeType.lifetime), value.count == 4 else { return nil }
        return UInt32(value[0]) << 24 | UInt32(value[1]) << 16 | UInt32(value[2]) << 8 | UInt32(value[3])
    }

    public var channelNumber: UInt16? {
        guard let value = rawValue(of: TURNAttributeType.channelNumber), value.count == 4 else { return nil }
        return UInt16(value[0]) << 8 | UInt16(value[1])
    }

    public var xorPeerAddress: TransportAddress? {
        rawValue(of: TURNAttributeType.xorPeerAddress).flatMap { STUNAttribute.xorAddress(fromValue: $0, transactionID: transactionID) }
    }

    public var xorRelayedAddress: TransportAddress? {
        rawValue(of: TURNAttributeType.xorRelayedAddress).flatMap { STUNAttribute.xorAddress(fromValue: $0, transactionID: transactionID) }
    }
}
