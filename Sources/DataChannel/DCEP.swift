import RTCBase
import SCTP

/// SCTP payload protocol identifiers of WebRTC data channels (RFC 8831 §8, IANA).
public enum DataChannelPPID {
    public static let dcep: UInt32 = 50
    public static let string: UInt32 = 51
    /// Deprecated partial messages (RFC 8831 §6.6): accepted, joined until the final part; never sent.
    public static let stringPartial: UInt32 = 52
    public static let binary: UInt32 = 53
    public static let binaryPartial: UInt32 = 54
    /// An empty message travels as one zero byte under these (SCTP cannot carry empty user data).
    public static let stringEmpty: UInt32 = 56
    public static let binaryEmpty: UInt32 = 57
}

/// How a channel delivers (RFC 8832 §5.1 channel types and reliability parameter).
public struct DataChannelOptions: Equatable, Sendable {
    public var ordered: Bool
    /// `maxRetransmits` or `maxPacketLifeTime` (milliseconds), at most one.
    public var reliability: Reliability
    public var priority: UInt16

    public enum Reliability: Equatable, Sendable {
        case reliable
        case maxRetransmits(UInt32)
        case maxPacketLifeTime(milliseconds: UInt32)
    }

    public init(ordered: Bool = true, reliability: Reliability = .reliable, priority: UInt16 = 256) {
        self.ordered = ordered
        self.reliability = reliability
        self.priority = priority
    }

    var channelType: UInt8 {
        let base: UInt8
        switch reliability {
        case .reliable: base = 0x00
        case .maxRetransmits: base = 0x01
        case .maxPacketLifeTime: base = 0x02
        }
        return ordered ? base : base | 0x80
    }

    var reliabilityParameter: UInt32 {
        switch reliability {
        case .reliable: return 0
        case let .maxRetransmits(count): return count
        case let .maxPacketLifeTime(milliseconds): return milliseconds
        }
    }
}

public enum DataChannelError: Error, Equatable, Sendable {
    case malformed(ParseError)
    /// A DCEP message type or channel type this version does not know.
    case unknownType(UInt8)
    case unknownChannel(UInt16)
    case channelNotOpen(UInt16)
    /// No even (DTLS client) or odd (DTLS server) stream id left, or the one asked for is taken.
    case noStreamAvailable
    /// The SCTP association refused it.
    case sctp(SCTPError)
}

/// DCEP messages (RFC 8832 §5), carried with PPID 50 on the channel's stream.
public enum DCEPMessage: Equatable, Sendable {
    /// §5.1 DATA_CHANNEL_OPEN.
    case open(options: DataChannelOptions, label: String, protocol: String)
    /// §5.2 DATA_CHANNEL_ACK.
    case ack

    static let openType: UInt8 = 0x03
    static let ackType: UInt8 = 0x02

    public init(parsing bytes: [UInt8]) throws(DataChannelError) {
        var reader = ByteReader(bytes)
        do {
            let type = try reader.readUInt8("DCEP message type")
            switch type {
            case Self.ackType:
                self = .ack
            case Self.openType:
                let channelType = try reader.readUInt8("channel type")
                let priority = try reader.readUInt16("priority")
                let parameter = try reader.readUInt32("reliability parameter")
                let labelLength = Int(try reader.readUInt16("label length"))
                let protocolLength = Int(try reader.readUInt16("protocol length"))
                let label = try reader.readBytes(labelLength, "label")
                let protocolName = try reader.readBytes(protocolLength, "protocol")
                let reliability: DataChannelOptions.Reliability
                switch channelType & 0x7F {
                case 0x00: reliability = .reliable
                case 0x01: reliability = .maxRetransmits(parameter)
                case 0x02: reliability = .maxPacketLifeTime(milliseconds: parameter)
                default: throw DataChannelError.unknownType(channelType)
                }
                self = .open(options: DataChannelOptions(ordered: channelType & 0x80 == 0, reliability: reliability, priority: priority),
                             label: String(decoding: label, as: UTF8.self), protocol: String(decoding: protocolName, as: UTF8.self))
            default:
                throw DataChannelError.unknownType(type)
            }
        } catch let error as ParseError {
            throw .malformed(error)
        } catch let error as DataChannelError {
            throw error
        } catch {
            throw .malformed(.invalid("\(error)"))
        }
    }

    public func serialized() -> [UInt8] {
        switch self {
        case .ack:
            return [Self.ackType]
        case let .open(options, label, protocolName):
            let labelBytes = Array(label.utf8.prefix(Int(UInt16.max)))
            let protocolBytes = Array(protocolName.utf8.prefix(Int(UInt16.max)))
            var writer = ByteWriter(capacity: 12 + labelBytes.count + protocolBytes.count)
            writer.write(Self.openType)
            writer.write(options.channelType)
            writer.write(options.priority)
            writer.write(options.reliabilityParameter)
            writer.write(UInt16(labelBytes.count))
            writer.write(UInt16(protocolBytes.count))
            writer.write(contentsOf: labelBytes)
            writer.write(contentsOf: protocolBytes)
            return writer.bytes
        }
    }
}
