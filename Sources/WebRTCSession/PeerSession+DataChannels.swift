import DTLS
import DataChannel
import RTCBase
import SCTP
import SDP

// Data channels in a viewer's session (RFC 8831): SCTP over the session's DTLS (RFC 8261). Only a
// session whose answer accepted an application section (NegotiatedSession.dataChannel) has them; it
// keeps its DTLS endpoint after the handshake (the others free it, see `retireDTLS`). Each DTLS
// application-data record is one SCTP packet, each SCTP packet one record.

/// The SCTP side of a session: the endpoint, and the outputs buffer it drains into (reused). A
/// class, so the endpoint (a value with the association's queues) is mutated in place, never copied.
final class SessionDataChannels {
    var endpoint: DataChannelEndpoint
    var drained: [DataChannelOutput] = []
    var started = false
    /// SCTP packets DTLS refused to send (none expected: the packet size keeps each in one record).
    var packetsNotSent = 0

    /// The SCTP packet size: the DTLS record payload that fits rtcam's 1200-byte datagrams with the
    /// largest record overhead of the suites it allows (CBC-SHA256: 13 header + 16 IV + 32 MAC +
    /// up to 16 padding). A packet split over two records would be two broken SCTP packets.
    static let maxPacketSize = DTLSEndpoint.maximumDatagramSize - 13 - 16 - 32 - 16

    init(negotiated: NegotiatedDataChannel, dtlsRole: DTLSRole, random: inout some RandomNumberGenerator) {
        // RFC 9260 §5.1.3: the state cookie is authenticated with a secret only this session knows.
        var secret = [UInt8](repeating: 0, count: 32)
        for index in secret.indices { secret[index] = UInt8.random(in: 0...255, using: &random) }
        let key = secret
        var configuration = SCTPConfiguration(cookieAuthenticator: { message in HMACSHA256.mac(key: key, message: message) })
        configuration.localPort = negotiated.localSCTPPort
        configuration.remotePort = negotiated.remoteSCTPPort
        configuration.maxMessageSize = negotiated.localMaxMessageSize
        configuration.remoteMaxMessageSize = negotiated.remoteMaxMessageSize
        configuration.maxPacketSize = Self.maxPacketSize
        endpoint = DataChannelEndpoint(role: dtlsRole == .client ? .client : .server, configuration: configuration, random: &random)
    }
}

/// HMAC-SHA-256 (RFC 2104) over mbedTLS's SHA-256, for the SCTP state cookie.
enum HMACSHA256 {
    static func mac(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var block = key.count > 64 ? MbedDigest.sha256(key) : key
        block += [UInt8](repeating: 0, count: 64 - block.count)
        let inner = MbedDigest.sha256(block.map { $0 ^ 0x36 } + message)
        return MbedDigest.sha256(block.map { $0 ^ 0x5C } + inner)
    }
}

extension PeerSession {
    /// Whether the answer negotiated data channels for this session.
    public var hasDataChannels: Bool { dataChannels != nil }

    /// The channels open now (the peer's and ours).
    public var dataChannelInfos: [DataChannelInfo] { dataChannels?.endpoint.channelInfos ?? [] }

    /// SCTP packets that could not go out as one DTLS record each (none expected).
    public var sctpPacketsNotSent: Int { dataChannels?.packetsNotSent ?? 0 }

    /// The SCTP association's counters (nil without data channels).
    public var sctpStatistics: SCTPStatistics? { dataChannels?.endpoint.association.statistics }

    /// Sends a message on an open channel (RFC 8831 §6.6); outputs follow in `drainOutputs`.
    public func sendDataChannelMessage(_ message: DataChannelMessage, on channel: UInt16, now: MonotonicTime) throws(DataChannelError) {
        guard let channels = dataChannels, channels.started, state == .connected else { throw .channelNotOpen(channel) }
        var failure: DataChannelError?
        do { try channels.endpoint.send(message, on: channel, now: now) } catch { failure = error }
        pumpDataChannels(now: now)
        if let failure { throw failure }
    }

    /// Opens a channel from rtcam's side (DATA_CHANNEL_OPEN, RFC 8832); returns its stream id.
    public func openDataChannel(label: String, options: DataChannelOptions = DataChannelOptions(),
                                now: MonotonicTime) throws(DataChannelError) -> UInt16 {
        guard let channels = dataChannels, !state.isFinished else { throw .channelNotOpen(0) }
        let id = try channels.endpoint.open(label: label, options: options, now: now)
        pumpDataChannels(now: now)
        return id
    }

    /// Closes a channel by resetting its stream (RFC 8831 §6.7); `.closed` follows once both sides did.
    public func closeDataChannel(_ channel: UInt16, now: MonotonicTime) {
        guard let channels = dataChannels else { return }
        channels.endpoint.close(channel, now: now)
        pumpDataChannels(now: now)
    }

    /// Bytes queued on all channels and not yet acknowledged.
    public var dataChannelBufferedAmount: Int { dataChannels?.endpoint.association.bufferedAmount ?? 0 }

    /// Bytes queued on a channel and not yet acknowledged (W3C bufferedAmount).
    public func dataChannelBufferedAmount(_ channel: UInt16) -> Int { dataChannels?.endpoint.bufferedAmount(of: channel) ?? 0 }

    // MARK: - Inside the session

    /// DTLS is up: the DTLS client starts SCTP (RFC 8832 §6 / RFC 8261; a server waits for the INIT
    /// and answers it, and crossing INITs would be handled too, RFC 9260 §5.2.1).
    func startDataChannels(now: MonotonicTime) {
        guard let channels = dataChannels, !channels.started else { return }
        channels.started = true
        if channels.endpoint.role == .client { channels.endpoint.connect(now: now) }
        pumpDataChannels(now: now)
    }

    /// One DTLS application-data record: one SCTP packet.
    func receiveSCTP(_ packet: [UInt8], now: MonotonicTime) {
        guard let channels = dataChannels, channels.started else { return }
        channels.endpoint.handle(.receive(packet), now: now)
        pumpDataChannels(now: now)
    }

    func handleDataChannelTimeout(now: MonotonicTime) {
        guard let channels = dataChannels, channels.started, let deadline = channels.endpoint.nextDeadline, deadline <= now else { return }
        channels.endpoint.handle(.timeout, now: now)
        pumpDataChannels(now: now)
    }

    var dataChannelDeadline: MonotonicTime? {
        guard let channels = dataChannels, channels.started, state == .connected else { return nil }
        return channels.endpoint.nextDeadline
    }

    /// The endpoint's packets go out as DTLS records, its events as session events.
    func pumpDataChannels(now: MonotonicTime) {
        guard let channels = dataChannels else { return }
        channels.drained.removeAll(keepingCapacity: true)
        channels.endpoint.drainOutputs(into: &channels.drained)
        var packets: [[UInt8]] = []
        for output in channels.drained {
            switch output {
            case let .transmit(bytes): packets.append(bytes)
            case let .event(event): emit(.dataChannel(event))
            case .timeout: break
            }
        }
        if let dtls = dtlsEndpoint, dtls.isConnected {
            let maximum = dtls.maximumRecordPayload
            for packet in packets {
                // Split over two records it would be two broken packets: never sent so (counted).
                guard packet.count <= maximum else { channels.packetsNotSent += 1; continue }
                do { try dtls.sendApplicationData(packet) } catch { channels.packetsNotSent += 1 }
            }
        } else {
            channels.packetsNotSent += packets.count
        }
        if !packets.isEmpty { drainDTLS(now: now) }
    }
}
