import RTCBase

/// What an association needs to start. The defaults suit a WebRTC data channel transport (RFC 8831
/// §6, RFC 8841): port 5000, a 256 KiB max-message-size, 1200-byte SCTP packets (as pion and aiortc
/// send; with DTLS 1.2 AES-GCM's 37 bytes, UDP and IPv4 that is 1265 bytes on the wire).
public struct SCTPConfiguration: Sendable {
    /// From `a=sctp-port` (RFC 8841 §5); both 5000 unless the SDP says otherwise.
    public var localPort: UInt16 = 5000
    public var remotePort: UInt16 = 5000
    /// Largest SCTP packet (common header included) handed to DTLS.
    public var maxPacketSize = 1200
    /// Our `a=max-message-size` (RFC 8841 §6): the largest message we take in.
    public var maxMessageSize = 256 * 1024
    /// The peer's `a=max-message-size`: the largest message `send` accepts. RFC 8841 §6: 64 KiB
    /// when the peer's SDP has none; its 0 (no limit) is `Int.max` here.
    public var remoteMaxMessageSize = 256 * 1024
    /// The receive buffer advertised as a_rwnd (RFC 9260 §6.2.1).
    public var receiveWindow: UInt32 = 1024 * 1024
    public var outboundStreams: UInt16 = 65_535
    public var inboundStreams: UInt16 = 65_535
    /// RFC 9260 §16 protocol parameters. The minimum RTO is lower than the RFC's 1 s, as WebRTC
    /// stacks do: data channels carry interactive traffic. It stays above the peer's delayed-ack
    /// time plus a round trip, or a lone message's SACK (200 ms late by design) would come after
    /// T3 and be retransmitted for nothing (seen here with 200 ms).
    public var rtoInitial: Duration = .seconds(1)
    public var rtoMin: Duration = .milliseconds(400)
    public var rtoMax: Duration = .seconds(60)
    public var maxInitRetransmits = 8
    /// Association.Max.Retrans: consecutive timeouts without an answer before the peer is given up.
    public var maxAssociationRetransmits = 10
    public var heartbeatInterval: Duration = .seconds(30)
    /// RFC 9260 §6.2: at most 500 ms, 200 ms recommended.
    public var delayedAckTimeout: Duration = .milliseconds(200)
    public var cookieLifetime: Duration = .seconds(60)
    /// The MAC that authenticates state cookies (RFC 9260 §5.1.3), e.g. HMAC-SHA256 under a secret
    /// the caller keeps: the sans-IO core holds no key and links no crypto library.
    public var cookieAuthenticator: @Sendable ([UInt8]) -> [UInt8]

    public init(cookieAuthenticator: @escaping @Sendable ([UInt8]) -> [UInt8]) {
        self.cookieAuthenticator = cookieAuthenticator
    }

    /// Largest user data in one DATA chunk, so that any DATA chunk fits a packet alone.
    var maxFragmentSize: Int { maxPacketSize - SCTPPacket.commonHeaderSize - DataChunk.headerSize }
}

/// How hard a message is tried (RFC 3758 PR-SCTP; RFC 8831 §6.1 maps the data channel options).
public enum SCTPReliability: Equatable, Sendable {
    case reliable
    /// Sent at most 1 + n times (`maxRetransmits`).
    case maxRetransmits(Int)
    /// Not retransmitted once this long has passed since `send` (`maxPacketLifeTime`).
    case lifetime(Duration)
}

public enum SCTPInput: Sendable {
    /// One SCTP packet: the plaintext of one DTLS application-data record (RFC 8261 §4).
    case receive([UInt8])
    case timeout
}

public enum SCTPCloseReason: Equatable, Sendable {
    /// SHUTDOWN finished (RFC 9260 §9.2).
    case shutdown
    /// This side sent ABORT.
    case aborted
    /// The peer sent ABORT (with its error causes, if any).
    case abortedByPeer(causes: [UInt16])
    /// The peer stopped answering (Max.Init.Retransmits or Association.Max.Retrans, RFC 9260 §8.1).
    case unreachable
}

public enum SCTPEvent: Equatable, Sendable {
    case associationEstablished
    /// A whole message, in order for ordered streams.
    case message(stream: UInt16, ppid: UInt32, payload: [UInt8])
    /// The peer reset its outgoing streams (RFC 6525 §5.2.2), our incoming ones: their stream
    /// sequence numbers start from 0 again. Empty means all streams. A data channel closes here.
    case incomingStreamsReset([UInt16])
    /// Our request to reset these outgoing streams was performed: they may be used again.
    case outgoingStreamsReset([UInt16])
    /// The peer refused to reset these streams (RFC 6525 §4.4 "Denied" or an error).
    case outgoingStreamsResetFailed([UInt16])
    case closed(SCTPCloseReason)
}

public enum SCTPOutput: Sendable {
    /// An SCTP packet to send as DTLS application data.
    case transmit([UInt8])
    case event(SCTPEvent)
    /// Nothing more to do now; call `handle(.timeout)` at this time (nil: only input wakes it).
    case timeout(MonotonicTime?)
}

public enum SCTPState: Equatable, Sendable {
    /// Nothing sent yet: waits for an INIT, or for `connect`.
    case idle
    case cookieWait, cookieEchoed, established
    case shutdownPending, shutdownSent, shutdownReceived, shutdownAckSent
    case closed
}

/// Counters for tests and /api/status.
public struct SCTPStatistics: Equatable, Sendable {
    public var packetsSent = 0
    public var packetsReceived = 0
    /// Packets dropped: bad checksum, malformed, wrong ports or verification tag.
    public var packetsDropped = 0
    public var dataChunksSent = 0
    public var dataChunksReceived = 0
    public var retransmittedChunks = 0
    public var fastRetransmits = 0
    public var retransmissionTimeouts = 0
    public var duplicateTSNsReceived = 0
    public var abandonedMessages = 0
    public var forwardTSNsSent = 0
    public var forwardTSNsReceived = 0
    public var heartbeatsSent = 0
    public var heartbeatAcksReceived = 0
    public var messagesSent = 0
    public var messagesReceived = 0

    public init() {}
}

/// TSNs and request sequence numbers are 32-bit serial numbers (RFC 9260 §1.6); inside they are
/// 64-bit counters, widened at the parse boundary against a nearby known value.
@inline(__always)
func widen(_ value: UInt32, near reference: UInt64) -> UInt64 {
    let delta = Int64(Int32(bitPattern: value &- UInt32(truncatingIfNeeded: reference)))
    let widened = Int64(bitPattern: reference) &+ delta
    return widened < 0 ? 0 : UInt64(widened)
}

/// Serial comparison of 16-bit stream sequence numbers (RFC 1982).
@inline(__always)
func ssnLess(_ a: UInt16, _ b: UInt16) -> Bool { Int16(bitPattern: a &- b) < 0 }
