import RTCBase
import SCTP

/// A message on a data channel: text (PPID 51/56) or binary (53/57) (RFC 8831 §6.6).
public enum DataChannelMessage: Hashable, Sendable {
    case text(String)
    case binary([UInt8])
}

public struct DataChannelInfo: Equatable, Sendable {
    public var id: UInt16
    public var label: String
    public var `protocol`: String
    public var options: DataChannelOptions
    public var negotiated: Bool

    public init(id: UInt16, label: String, protocol protocolName: String, options: DataChannelOptions, negotiated: Bool) {
        self.id = id
        self.label = label
        self.protocol = protocolName
        self.options = options
        self.negotiated = negotiated
    }
}

public enum DataChannelEvent: Equatable, Sendable {
    /// The SCTP association is up: channels may be opened.
    case connected
    /// The peer opened a channel (DATA_CHANNEL_OPEN, RFC 8832 §6), already acknowledged.
    case opened(DataChannelInfo)
    /// The peer acknowledged a channel this side opened.
    case acknowledged(UInt16)
    case message(channel: UInt16, DataChannelMessage)
    /// Both directions of the channel's stream were reset (RFC 8831 §6.7): its id is free again.
    case closed(UInt16)
    /// The association ended.
    case disconnected(SCTPCloseReason)
}

public enum DataChannelOutput: Sendable {
    /// An SCTP packet for DTLS to send as application data.
    case transmit([UInt8])
    case event(DataChannelEvent)
    case timeout(MonotonicTime?)
}

/// Data channels (RFC 8831) with DCEP (RFC 8832) over one SCTP association, sans-IO like it.
/// Stream ids follow the DTLS role (RFC 8832 §6): the DTLS client opens even ones, the server odd.
///
/// Wiring it into a WebRTC session (RFC 8841, RFC 8261): the SDP offer's `m=application ...
/// UDP/DTLS/SCTP webrtc-datachannel` section gives `a=sctp-port` (the configuration's remote port;
/// 5000 if absent) and `a=max-message-size`; the answer carries ours. Once DTLS is connected, each
/// DTLS application-data record is one SCTP packet for `handle(.receive(_:), now:)`, and each
/// `.transmit` is written as one record. The DTLS client calls `connect` (the server may too).
/// The same `now` and deadline discipline as the rest of the session: call `handle(.timeout, now:)`
/// at `nextDeadline`.
public struct DataChannelEndpoint: Sendable {
    public enum DTLSRole: Sendable { case client, server }

    private struct Channel: Sendable {
        var info: DataChannelInfo
        /// False until the peer's ACK: messages go ordered until then (RFC 8832 §6).
        var acknowledged: Bool
        /// Reset asked for / performed, for each direction of the channel's stream.
        var outgoingReset = false
        var outgoingResetDone = false
        var incomingReset = false
        var partial: [UInt8] = []
    }

    public private(set) var association: SCTPAssociation
    public let role: DTLSRole
    private var channels: [UInt16: Channel] = [:]
    private var outputs: [DataChannelOutput] = []
    /// The association's outputs, drained into this reused buffer.
    private var scratch: [SCTPOutput] = []

    public init(role: DTLSRole, configuration: SCTPConfiguration, random: inout some RandomNumberGenerator) {
        self.role = role
        association = SCTPAssociation(configuration: configuration, random: &random)
    }

    /// The DTLS client starts SCTP (either may, RFC 8261; crossing INITs are fine).
    public mutating func connect(now: MonotonicTime) {
        association.connect(now: now)
        pump(now: now)
    }

    public mutating func handle(_ input: SCTPInput, now: MonotonicTime) {
        association.handle(input, now: now)
        pump(now: now)
    }

    public var channelInfos: [DataChannelInfo] { channels.values.map(\.info).sorted { $0.id < $1.id } }

    /// Opens a channel: DATA_CHANNEL_OPEN goes out, unless `negotiatedID` says both sides agreed
    /// on the id out of band (RFC 8831 §6.5). Returns the stream id.
    public mutating func open(label: String, protocol protocolName: String = "", options: DataChannelOptions = DataChannelOptions(),
                              negotiatedID: UInt16? = nil, now: MonotonicTime) throws(DataChannelError) -> UInt16 {
        switch association.state {
        case .idle, .cookieWait, .cookieEchoed, .established: break
        default: throw .sctp(.notEstablished)
        }
        let id: UInt16
        if let negotiatedID {
            guard channels[negotiatedID] == nil else { throw .noStreamAvailable }
            id = negotiatedID
        } else {
            var candidate: UInt16? = role == .client ? 0 : 1
            while let current = candidate, channels[current] != nil {
                candidate = current <= UInt16.max - 2 ? current + 2 : nil
            }
            guard let found = candidate, found < association.configuration.outboundStreams else { throw .noStreamAvailable }
            id = found
        }
        let info = DataChannelInfo(id: id, label: label, protocol: protocolName, options: options, negotiated: negotiatedID != nil)
        channels[id] = Channel(info: info, acknowledged: negotiatedID != nil)
        // Before the association is up the OPEN waits; it goes out with `.connected`.
        if negotiatedID == nil, association.state == .established {
            do {
                try association.send(DCEPMessage.open(options: options, label: label, protocol: protocolName).serialized(),
                                     stream: id, ppid: DataChannelPPID.dcep, now: now)
            } catch {
                channels[id] = nil
                throw .sctp(error)
            }
        }
        pump(now: now)
        return id
    }

    public mutating func send(_ message: DataChannelMessage, on id: UInt16, now: MonotonicTime) throws(DataChannelError) {
        guard let channel = channels[id] else { throw .unknownChannel(id) }
        guard !channel.outgoingReset, !channel.incomingReset, association.state == .established else { throw .channelNotOpen(id) }
        let payload: [UInt8], ppid: UInt32
        switch message {
        case let .text(text):
            payload = text.isEmpty ? [0] : Array(text.utf8)
            ppid = text.isEmpty ? DataChannelPPID.stringEmpty : DataChannelPPID.string
        case let .binary(bytes):
            payload = bytes.isEmpty ? [0] : bytes
            ppid = bytes.isEmpty ? DataChannelPPID.binaryEmpty : DataChannelPPID.binary
        }
        let options = channel.info.options
        let reliability: SCTPReliability
        switch options.reliability {
        case .reliable: reliability = .reliable
        case let .maxRetransmits(count): reliability = .maxRetransmits(Int(count))
        case let .maxPacketLifeTime(milliseconds): reliability = .lifetime(.milliseconds(Int64(milliseconds)))
        }
        do {
            try association.send(payload, stream: id, ppid: ppid, unordered: !options.ordered && channel.acknowledged,
                                 reliability: reliability, now: now)
        } catch {
            throw .sctp(error)
        }
        pump(now: now)
    }

    /// Closes a channel by resetting its outgoing stream (RFC 8831 §6.7); `.closed` follows when
    /// the peer has reset its side too.
    public mutating func close(_ id: UInt16, now: MonotonicTime) {
        guard var channel = channels[id], !channel.outgoingReset else { return }
        channel.outgoingReset = true
        channels[id] = channel
        association.resetStreams([id], now: now)
        pump(now: now)
    }

    /// Bytes sent on the channel and not yet acknowledged (RFC 8831 §6.6 / W3C bufferedAmount).
    public func bufferedAmount(of id: UInt16) -> Int { association.bufferedAmount(stream: id) }

    public var nextDeadline: MonotonicTime? { association.nextDeadline }

    /// Everything the endpoint has to do after the last input, in order: SCTP packets to send as
    /// DTLS records and events, then always one `.timeout` with when to call `handle(.timeout)`
    /// next. Appended to the caller's array, which it reuses (the session convention).
    public mutating func drainOutputs(into drained: inout [DataChannelOutput]) {
        drained.append(contentsOf: outputs)
        outputs.removeAll(keepingCapacity: true)
        drained.append(.timeout(association.nextDeadline))
    }

    // MARK: - From the association

    private mutating func pump(now: MonotonicTime) {
        // Handling an event may send (an ACK, a reset of our half): drain until nothing new comes.
        var rounds = 0
        while true {
            scratch.removeAll(keepingCapacity: true)
            association.drainOutputs(into: &scratch)
            guard scratch.count > 1 else { return }   // only the closing `.timeout`
            let batch = scratch
            for output in batch {
                switch output {
                case let .transmit(bytes): outputs.append(.transmit(bytes))
                case let .event(event): handle(event, now: now)
                case .timeout: break
                }
            }
            rounds += 1
            if rounds > 1_000 { return }   // cannot happen: each round answers only what came before
        }
    }

    private mutating func handle(_ event: SCTPEvent, now: MonotonicTime) {
        switch event {
        case .associationEstablished:
            outputs.append(.event(.connected))
            // Channels opened while the association was being set up.
            for (id, channel) in channels.sorted(by: { $0.key < $1.key }) where !channel.info.negotiated {
                let info = channel.info
                do {
                    try association.send(DCEPMessage.open(options: info.options, label: info.label, protocol: info.protocol).serialized(),
                                         stream: id, ppid: DataChannelPPID.dcep, now: now)
                } catch {
                    channels[id] = nil
                    outputs.append(.event(.closed(id)))
                }
            }
        case let .message(stream, ppid, payload):
            receive(payload, stream: stream, ppid: ppid, now: now)
        case let .incomingStreamsReset(streams):
            let ids = streams.isEmpty ? Array(channels.keys) : streams
            for id in ids {
                guard var channel = channels[id] else { continue }
                channel.incomingReset = true
                if !channel.outgoingReset {
                    channel.outgoingReset = true
                    association.resetStreams([id], now: now)  // close our half too (RFC 8831 §6.7)
                }
                channels[id] = channel
            }
        case let .outgoingStreamsReset(streams):
            for id in streams { channels[id]?.outgoingResetDone = true }
        case let .outgoingStreamsResetFailed(streams):
            // The peer cannot or will not reset: the channel is closed for us all the same.
            for id in streams where channels[id] != nil {
                channels[id] = nil
                outputs.append(.event(.closed(id)))
            }
        case let .closed(reason):
            channels = [:]
            outputs.append(.event(.disconnected(reason)))
        }
        closeFinishedChannels()
    }

    /// A channel closes when both directions of its stream are reset.
    private mutating func closeFinishedChannels() {
        for (id, channel) in channels.sorted(by: { $0.key < $1.key }) where channel.incomingReset && channel.outgoingResetDone {
            channels[id] = nil
            outputs.append(.event(.closed(id)))
        }
    }

    private mutating func receive(_ payload: [UInt8], stream: UInt16, ppid: UInt32, now: MonotonicTime) {
        switch ppid {
        case DataChannelPPID.dcep:
            guard let message = try? DCEPMessage(parsing: payload) else { return }
            switch message {
            case let .open(options, label, protocolName):
                // RFC 8832 §6: the opener's stream id has the opener's parity; an id in use is an error.
                guard channels[stream] == nil else { return }
                let info = DataChannelInfo(id: stream, label: label, protocol: protocolName, options: options, negotiated: false)
                channels[stream] = Channel(info: info, acknowledged: true)
                try? association.send(DCEPMessage.ack.serialized(), stream: stream, ppid: DataChannelPPID.dcep, now: now)
                outputs.append(.event(.opened(info)))
            case .ack:
                guard var channel = channels[stream], !channel.acknowledged else { return }
                channel.acknowledged = true
                channels[stream] = channel
                outputs.append(.event(.acknowledged(stream)))
            }
        case DataChannelPPID.string, DataChannelPPID.binary, DataChannelPPID.stringEmpty, DataChannelPPID.binaryEmpty,
             DataChannelPPID.stringPartial, DataChannelPPID.binaryPartial:
            guard var channel = channels[stream] else { return }
            // Any data means the peer got our OPEN (RFC 8832 §6: it implies the ACK).
            channel.acknowledged = true
            if ppid == DataChannelPPID.stringPartial || ppid == DataChannelPPID.binaryPartial {
                if channel.partial.count + payload.count <= association.configuration.maxMessageSize {
                    channel.partial += payload
                }
                channels[stream] = channel
                return
            }
            let whole = channel.partial.isEmpty ? payload : channel.partial + payload
            channel.partial = []
            channels[stream] = channel
            let message: DataChannelMessage
            switch ppid {
            case DataChannelPPID.string: message = .text(String(decoding: whole, as: UTF8.self))
            case DataChannelPPID.stringEmpty: message = .text("")
            case DataChannelPPID.binaryEmpty: message = .binary([])
            default: message = .binary(whole)
            }
            outputs.append(.event(.message(channel: stream, message)))
        default:
            break  // an unknown PPID: not for data channels
        }
    }
}
