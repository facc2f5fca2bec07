import RTCBase

/// One SCTP association (RFC 9260) carried over DTLS (RFC 8261), sans-IO (DESIGN.md): packets and
/// time in through `handle`, messages in through `send`; packets, events and the next deadline out
/// through `drainOutputs(into:)`. Supports what WebRTC data channels need (RFC 8831 §6): the state-cookie
/// handshake, DATA/SACK with retransmission and congestion control, fragmentation, ordered and
/// unordered delivery, partial reliability (RFC 3758), stream reset (RFC 6525), heartbeats,
/// SHUTDOWN and ABORT. One path only: no multi-homing, no I-DATA (RFC 8260), no ECN, no AUTH
/// (RFC 4895), no zero checksum (RFC 9653). Not done either: association restart (an INIT in
/// ESTABLISHED is ignored, §5.2.2), the Stale Cookie error (a stale cookie is dropped and the peer's
/// T1 resends), Max.Burst.
public struct SCTPAssociation: Sendable {
    public let configuration: SCTPConfiguration
    public private(set) var state: SCTPState = .idle
    public private(set) var statistics = SCTPStatistics()

    // Tags and peer capabilities (RFC 9260 §5.1).
    let localTag: UInt32
    private(set) var peerTag: UInt32 = 0
    private let localInitialTSN: UInt32
    private var peerSupportsForwardTSN = false
    private var peerSupportsReconfig = false
    /// Streams the peer accepts from us (min of our OS and its MIS).
    private var outboundStreamLimit: UInt16 = 0
    private var random: SeededRandom
    private var outputs: [SCTPOutput] = []
    private var controlChunks: [SCTPChunk] = []

    // MARK: sending side
    /// The next TSN to assign (64-bit; the wire carries the low 32 bits).
    private var nextTSN: UInt64
    /// Everything up to here is acknowledged by the peer's cumulative TSN ack.
    private var cumulativeAckPoint: UInt64
    /// RFC 3758 §3.5: where the peer may be told to move its cumulative TSN.
    private var advancedPeerAckPoint: UInt64
    /// Chunks with a TSN above `cumulativeAckPoint`: entry i has TSN cumulativeAckPoint + 1 + i.
    private var outstanding: [OutstandingChunk] = []
    private var outstandingHead = 0
    /// Messages not yet (wholly) given TSNs.
    private var pending = SendQueue()
    private var pendingBytes = 0
    private var nextMessageID: UInt64 = 0
    private var outgoingSSN: [UInt16: UInt16] = [:]
    /// Bytes of user data sent and not yet acknowledged or given up as lost (RFC 9260 §7.2 flightsize).
    public private(set) var flightSize = 0
    private var peerReceiveWindow = 0
    /// RFC 9260 §7.2: congestion window, slow-start threshold, partially acked bytes.
    public private(set) var congestionWindow = 0
    public private(set) var slowStartThreshold = 0
    private var partialBytesAcked = 0
    private var fastRecoveryExit: UInt64?
    /// After a timeout or a fast retransmit: one packet of retransmissions goes out whatever cwnd says.
    private var retransmitAllowance = false
    private var forwardTSNNeeded = false
    /// Whether any lifetime-limited message was ever sent (else the expiry sweep is skipped).
    private var usesLifetimes = false
    /// Whether some chunk may be marked for retransmission (else the scan is skipped).
    private var retransmissionsMarked = false
    /// User data given a TSN and neither acknowledged nor abandoned.
    private var unackedBytes = 0
    /// `bufferedAmount` by stream (data channels each have their own).
    private var bufferedByStream: [UInt16: Int] = [:]
    /// When DATA last went out (new or retransmitted), for cwnd decay while idle.
    private var lastDataSent: MonotonicTime?

    // RTT and timers (RFC 9260 §6.3).
    public private(set) var retransmissionTimeout: Duration
    private var smoothedRTT: Duration?
    private var rttVariation: Duration = .zero
    private var t1: MonotonicTime?
    private var t1Count = 0
    private var t1Chunk: SCTPChunk?
    private var t2: MonotonicTime?
    private var t3: MonotonicTime?
    private var errorCount = 0
    private var heartbeatDeadline: MonotonicTime?
    private var heartbeatNonce: UInt64?

    // MARK: receiving side
    /// The peer's TSNs up to here have all arrived (or were skipped by FORWARD TSN).
    private var peerCumulativeTSN: UInt64 = 0
    /// TSNs above `peerCumulativeTSN` that arrived, ascending.
    private var receivedAbove: [UInt64] = []
    private var duplicates: [UInt32] = []
    private var sackNow = false
    private var packetsSinceSack = 0
    private var delayedAck: MonotonicTime?
    private var reassembly = Reassembly()

    // MARK: stream reset (RFC 6525)
    private var nextRequestSequence: UInt32
    private var streamsToReset: [UInt16] = []
    private var resettingStreams: Set<UInt16> = []
    private var resetInFlight: (sequence: UInt32, streams: [UInt16], lastTSN: UInt32)?
    private var reconfigTimer: MonotonicTime?
    private var peerNextRequestSequence: UInt32 = 0
    private var lastResponse: (sequence: UInt32, result: UInt32)?
    private var deferredIncomingReset: (sequence: UInt32, streams: [UInt16], lastTSN: UInt64)?

    /// How far above the cumulative TSN a DATA chunk may be and still be kept (§6.2 lets a
    /// receiver drop what it cannot hold).
    static let maxTSNsAhead: UInt64 = 16_384

    /// `random` draws the verification tag and initial TSN (RFC 9260 §5.3.1) and seeds later
    /// choices (heartbeat nonces); the daemon passes `SystemRandomNumberGenerator`.
    public init(configuration: SCTPConfiguration, random: inout some RandomNumberGenerator) {
        self.configuration = configuration
        var tag: UInt32 = 0
        while tag == 0 { tag = UInt32.random(in: 1...UInt32.max, using: &random) }
        localTag = tag
        localInitialTSN = UInt32.random(in: 0...UInt32.max, using: &random)
        self.random = SeededRandom(seed: random.next())
        // 64-bit counters start at 2^32 + the initial value, so widening never goes below zero.
        nextTSN = 1 << 32 | UInt64(localInitialTSN)
        cumulativeAckPoint = nextTSN - 1
        advancedPeerAckPoint = cumulativeAckPoint
        nextRequestSequence = localInitialTSN  // RFC 6525 §5.1.1
        retransmissionTimeout = configuration.rtoInitial
    }

    // MARK: - API

    /// Starts the handshake as the initiator (RFC 9260 §5.1 A). In WebRTC the DTLS client does
    /// this, though both sides may, and INITs that cross are handled (§5.2.1).
    public mutating func connect(now: MonotonicTime) {
        guard state == .idle else { return }
        state = .cookieWait
        t1Chunk = .initiation(localInit())
        t1Count = 0
        send(chunks: [t1Chunk!], tag: 0)
        t1 = now + retransmissionTimeout
    }

    public mutating func handle(_ input: SCTPInput, now: MonotonicTime) {
        switch input {
        case let .receive(bytes): receive(bytes, now: now)
        case .timeout: handleTimeout(now: now)
        }
        flush(now: now)
    }

    /// Queues a message. Throws if the association cannot take it; `reliability` and `unordered`
    /// choose PR-SCTP and the U bit (RFC 8831 §6.6).
    public mutating func send(_ message: [UInt8], stream: UInt16, ppid: UInt32, unordered: Bool = false,
                              reliability: SCTPReliability = .reliable, now: MonotonicTime) throws(SCTPError) {
        guard state == .established else { throw .notEstablished }
        guard !message.isEmpty, message.count <= configuration.remoteMaxMessageSize else { throw .messageSize(message.count) }
        guard stream < outboundStreamLimit, !resettingStreams.contains(stream) else { throw .streamUnavailable(stream) }
        var reliability = reliability
        if !peerSupportsForwardTSN { reliability = .reliable }  // RFC 3758 §3.3: nothing to abandon with
        if case .lifetime = reliability { usesLifetimes = true }
        pending.append(OutgoingMessage(id: nextMessageID, stream: stream, ppid: ppid, unordered: unordered,
                                       payload: message, reliability: reliability, created: now))
        nextMessageID += 1
        pendingBytes += message.count
        bufferedByStream[stream, default: 0] += message.count
        statistics.messagesSent += 1
        flush(now: now)
    }

    /// Closes outgoing streams (RFC 6525 §5.1.2; RFC 8831 §6.7 closes a data channel so). Messages
    /// queued on them still go first; then `.outgoingStreamsReset` reports the streams free again.
    public mutating func resetStreams(_ streams: [UInt16], now: MonotonicTime) {
        guard state == .established else { return }
        guard peerSupportsReconfig else {
            // The peer did not list RE-CONFIG in its INIT (RFC 6525 §3.1): no way to reset.
            outputs.append(.event(.outgoingStreamsResetFailed(streams)))
            return
        }
        for stream in streams where !resettingStreams.contains(stream) {
            resettingStreams.insert(stream)
            streamsToReset.append(stream)
        }
        flush(now: now)
    }

    /// Graceful close (RFC 9260 §9.2): queued data is delivered first.
    public mutating func shutdown(now: MonotonicTime) {
        switch state {
        case .idle, .cookieWait, .cookieEchoed:
            close(.shutdown)
        case .established:
            state = .shutdownPending
            flush(now: now)
        default:
            break
        }
    }

    /// Ungraceful close (RFC 9260 §9.1): ABORT goes out, everything queued is dropped.
    public mutating func abort(reason: String = "") {
        guard state != .closed, state != .idle else { return }
        let cause = SCTPErrorCause(code: SCTPErrorCause.userInitiatedAbort, information: Array(reason.utf8.prefix(256)))
        // In COOKIE-WAIT the peer's tag is not known: reflect ours with the T bit (§8.4 rule 3).
        if peerTag == 0 {
            send(chunks: [.abort(reflected: true, causes: [cause])], tag: localTag)
        } else {
            send(chunks: [.abort(reflected: false, causes: [cause])], tag: peerTag)
        }
        close(.aborted)
    }

    /// The tag every packet to this association carries (RFC 9260 §8.5).
    public var localVerificationTag: UInt32 { localTag }

    /// Bytes accepted by `send` and not yet acknowledged (RFC 8831 bufferedAmount). Abandoned
    /// messages no longer count, though the peer may not have heard of it yet.
    public var bufferedAmount: Int { pendingBytes + unackedBytes }

    /// `bufferedAmount` of one stream.
    public func bufferedAmount(stream: UInt16) -> Int { bufferedByStream[stream] ?? 0 }

    private mutating func release(_ bytes: Int, on stream: UInt16) {
        guard let current = bufferedByStream[stream] else { return }
        if current <= bytes { bufferedByStream[stream] = nil } else { bufferedByStream[stream] = current - bytes }
    }

    /// Nothing queued and every TSN sent passed by the peer's cumulative ack (abandoned ones by way
    /// of FORWARD TSN): the peer has all it will ever get of what was sent.
    public var allAcknowledged: Bool { pending.isEmpty && outstandingHead == outstanding.count }

    public var nextDeadline: MonotonicTime? {
        guard state != .closed else { return nil }
        return earliest(t1, t2, t3, delayedAck, heartbeatDeadline, reconfigTimer)
    }

    /// Everything the association has to do after the last input, in order: packets to transmit
    /// and events, then always one `.timeout` with when to call `handle(.timeout)` next. Appended to
    /// the caller's array, which it reuses (the session convention, like `PeerSession`'s).
    public mutating func drainOutputs(into drained: inout [SCTPOutput]) {
        drained.append(contentsOf: outputs)
        outputs.removeAll(keepingCapacity: true)
        drained.append(.timeout(nextDeadline))
    }

    // MARK: - Receiving packets

    private mutating func receive(_ bytes: [UInt8], now: MonotonicTime) {
        let packet: SCTPPacket
        do { packet = try SCTPPacket(parsing: bytes) } catch {
            statistics.packetsDropped += 1
            return
        }
        if state == .closed {
            // §8.4 rule 5: a SHUTDOWN ACK after we closed (our SHUTDOWN COMPLETE was lost) gets a
            // SHUTDOWN COMPLETE with its own tag reflected (T bit). Anything else is ignored.
            if packet.chunks.contains(.shutdownAck), packet.verificationTag == localTag {
                send(chunks: [.shutdownComplete(reflected: true)], tag: packet.verificationTag)
            }
            return
        }
        guard packet.sourcePort == configuration.remotePort, packet.destinationPort == configuration.localPort,
              !packet.chunks.isEmpty else {
            statistics.packetsDropped += 1
            return
        }
        // RFC 9260 §8.5 and §8.5.1: which verification tag each packet must carry.
        let first = packet.chunks[0]
        switch first {
        case .initiation:
            guard packet.verificationTag == 0, packet.chunks.count == 1 else {  // §6.10: INIT goes alone
                statistics.packetsDropped += 1
                return
            }
        case let .abort(reflected, _), let .shutdownComplete(reflected):
            guard packet.verificationTag == (reflected ? peerTag : localTag), packet.verificationTag != 0 else {
                statistics.packetsDropped += 1
                return
            }
        default:
            guard packet.verificationTag == localTag else {
                statistics.packetsDropped += 1
                return
            }
        }
        statistics.packetsReceived += 1
        var receivedData = false
        var immediate = false
        for chunk in packet.chunks {
            guard state != .closed else { return }
            switch chunk {
            case let .data(data):
                receivedData = true
                immediate = immediate || data.immediate
                receiveData(data)
            case let .initiation(initChunk):
                receiveInit(initChunk, now: now)
            case let .initiationAck(initChunk):
                receiveInitAck(initChunk, now: now)
            case let .cookieEcho(cookie):
                receiveCookieEcho(cookie, now: now)
            case .cookieAck:
                if state == .cookieEchoed { establish(now: now) }
            case let .sack(sack):
                receiveSack(sack, now: now)
            case let .heartbeat(info):
                // §8.3: echoed as it came, if the answer fits one packet.
                if isConnected, info.count <= configuration.maxPacketSize - SCTPPacket.commonHeaderSize - 8 {
                    controlChunks.append(.heartbeatAck(info: info))
                }
            case let .heartbeatAck(info):
                receiveHeartbeatAck(info, now: now)
            case let .abort(_, causes):
                close(.abortedByPeer(causes: causes.map(\.code)))
                return
            case let .shutdown(cumulative):
                receiveShutdown(cumulative: cumulative, now: now)
            case .shutdownAck:
                if state == .shutdownSent || state == .shutdownAckSent {
                    send(chunks: [.shutdownComplete(reflected: false)], tag: peerTag)
                    close(.shutdown)
                    return
                }
            case .shutdownComplete:
                if state == .shutdownAckSent {
                    close(.shutdown)
                    return
                }
            case .error:
                break  // nothing rtcam sends can draw an error it could act on
            case let .forwardTSN(forward):
                receiveForwardTSN(forward)
            case let .reconfig(parameters):
                receiveReconfig(parameters, now: now)
            case let .unknown(type, _, _):
                // §3.2: the upper two bits say whether to report the chunk, and whether to skip it
                // or the rest of the packet.
                if type & 0x40 != 0, isConnected {
                    var writer = ByteWriter()
                    chunk.serialize(into: &writer)
                    controlChunks.append(.error(causes: [SCTPErrorCause(code: SCTPErrorCause.unrecognizedChunkType,
                                                                        information: Array(writer.bytes.prefix(configuration.maxPacketSize / 2)))]))
                }
                if type & 0x80 == 0 { return }
            }
        }
        if receivedData {
            packetsSinceSack += 1
            // §6.2: SACK at once for a gap, a duplicate, the I bit, or every second packet; else within 200 ms.
            if !receivedAbove.isEmpty || !duplicates.isEmpty || immediate || packetsSinceSack >= 2 || state != .established {
                sackNow = true
            } else if delayedAck == nil {
                delayedAck = now + configuration.delayedAckTimeout
            }
        }
    }

    private var isConnected: Bool {
        switch state {
        case .established, .shutdownPending, .shutdownSent, .shutdownReceived, .shutdownAckSent: return true
        default: return false
        }
    }

    // MARK: Handshake (RFC 9260 §5)

    private func localInit() -> InitChunk {
        InitChunk(initiateTag: localTag, advertisedReceiverWindow: configuration.receiveWindow,
                  outboundStreams: configuration.outboundStreams, inboundStreams: configuration.inboundStreams,
                  initialTSN: localInitialTSN,
                  parameters: [SCTPParameter(type: SCTPParameter.forwardTSNSupported, value: []),
                               SCTPParameter(type: SCTPParameter.supportedExtensions,
                                             value: [SCTPChunkType.reconfig, SCTPChunkType.forwardTSN])])
    }

    /// §5.1 B, and §5.2.1 for an INIT in COOKIE-WAIT or COOKIE-ECHOED: answer with our own tag and a
    /// cookie, keep no state.
    private mutating func receiveInit(_ peer: InitChunk, now: MonotonicTime) {
        guard state == .idle || state == .cookieWait || state == .cookieEchoed else { return }  // no restarts
        guard peer.initiateTag != 0, peer.outboundStreams > 0, peer.inboundStreams > 0 else { return }  // §3.3.2
        let cookie = StateCookie(created: now, localTag: localTag, peerTag: peer.initiateTag,
                                 localInitialTSN: localInitialTSN, peerInitialTSN: peer.initialTSN,
                                 peerWindow: peer.advertisedReceiverWindow, peerOutbound: peer.outboundStreams,
                                 peerInbound: peer.inboundStreams, peerForwardTSN: peer.supportsForwardTSN,
                                 peerReconfig: peer.supportsReconfig)
        var ack = localInit()
        ack.parameters.insert(SCTPParameter(type: SCTPParameter.stateCookie,
                                            value: cookie.sealed(configuration.cookieAuthenticator)), at: 0)
        ack.parameters += Self.unrecognizedParameters(peer.parameters)
        send(chunks: [.initiationAck(ack)], tag: peer.initiateTag)
    }

    /// §3.2.1: unknown INIT parameters whose type has the 0x4000 bit are reported back in INIT ACK;
    /// without the 0x8000 bit the rest of the parameters is not looked at.
    static func unrecognizedParameters(_ parameters: [SCTPParameter]) -> [SCTPParameter] {
        let known: Set<UInt16> = [5, 6, 7, 9, 11, 12, SCTPParameter.ecnCapable, SCTPParameter.supportedExtensions,
                                  SCTPParameter.forwardTSNSupported]
        var reported: [SCTPParameter] = []
        for parameter in parameters where !known.contains(parameter.type) {
            if parameter.type & 0x4000 != 0, reported.count < 8 {
                var writer = ByteWriter()
                SCTPChunk.write([parameter], into: &writer)
                reported.append(SCTPParameter(type: SCTPParameter.unrecognizedParameter, value: Array(writer.bytes.prefix(256))))
            }
            if parameter.type & 0x8000 == 0 { break }
        }
        return reported
    }

    /// §5.1 C: the INIT ACK's cookie goes back in COOKIE ECHO.
    private mutating func receiveInitAck(_ peer: InitChunk, now: MonotonicTime) {
        guard state == .cookieWait, peer.initiateTag != 0, let cookie = peer.stateCookie else { return }
        adoptPeer(tag: peer.initiateTag, initialTSN: peer.initialTSN, window: peer.advertisedReceiverWindow,
                  outbound: peer.outboundStreams, inbound: peer.inboundStreams,
                  forwardTSN: peer.supportsForwardTSN, reconfig: peer.supportsReconfig)
        state = .cookieEchoed
        t1Chunk = .cookieEcho(cookie: cookie)
        t1Count = 0
        send(chunks: [t1Chunk!], tag: peerTag)
        t1 = now + retransmissionTimeout
    }

    /// §5.1 D and §5.2.4: a valid cookie with our tag sets the association up.
    private mutating func receiveCookieEcho(_ bytes: [UInt8], now: MonotonicTime) {
        guard let cookie = StateCookie(opening: bytes, authenticator: configuration.cookieAuthenticator),
              cookie.localTag == localTag else { return }
        if isConnected {
            // A retransmitted COOKIE ECHO whose COOKIE ACK was lost (§5.2.4 action D).
            if cookie.peerTag == peerTag { controlChunks.append(.cookieAck) }
            return
        }
        guard state == .idle || state == .cookieWait || state == .cookieEchoed else { return }
        // §5.1.5: a cookie older than its lifetime is stale (here simply ignored; the peer retries).
        guard now >= cookie.created, now - cookie.created <= configuration.cookieLifetime else { return }
        if state == .cookieEchoed, peerTag != 0, peerTag != cookie.peerTag { return }
        adoptPeer(tag: cookie.peerTag, initialTSN: cookie.peerInitialTSN, window: cookie.peerWindow,
                  outbound: cookie.peerOutbound, inbound: cookie.peerInbound,
                  forwardTSN: cookie.peerForwardTSN, reconfig: cookie.peerReconfig)
        controlChunks.append(.cookieAck)
        establish(now: now)
    }

    private mutating func adoptPeer(tag: UInt32, initialTSN: UInt32, window: UInt32, outbound: UInt16, inbound: UInt16,
                                    forwardTSN: Bool, reconfig: Bool) {
        peerTag = tag
        peerCumulativeTSN = (1 << 32 | UInt64(initialTSN)) - 1
        receivedAbove = []
        peerReceiveWindow = Int(window)
        outboundStreamLimit = min(configuration.outboundStreams, inbound)
        peerSupportsForwardTSN = forwardTSN
        peerSupportsReconfig = reconfig
        peerNextRequestSequence = initialTSN  // RFC 6525 §5.2.1
        _ = outbound
    }

    private mutating func establish(now: MonotonicTime) {
        state = .established
        t1 = nil
        t1Chunk = nil
        errorCount = 0
        let mtu = configuration.maxPacketSize
        congestionWindow = min(4 * mtu, max(2 * mtu, 4404))  // §7.2.1
        slowStartThreshold = peerReceiveWindow
        heartbeatDeadline = now + configuration.heartbeatInterval + retransmissionTimeout
        outputs.append(.event(.associationEstablished))
    }

    // MARK: DATA in (RFC 9260 §6.2, §6.9)

    private mutating func receiveData(_ data: DataChunk) {
        guard isConnected || state == .cookieEchoed else { return }
        statistics.dataChunksReceived += 1
        let tsn = widen(data.tsn, near: peerCumulativeTSN)
        if tsn <= peerCumulativeTSN || reassembly.contains(tsn) || binarySearch(receivedAbove, tsn).found {
            statistics.duplicateTSNsReceived += 1
            if duplicates.count < 32 { duplicates.append(data.tsn) }
            return
        }
        // Too far ahead of the cumulative TSN, or a full buffer: drop; the peer resends. The TSN
        // window bounds the work a hostile peer can cause with tiny chunks (usrsctp tracks 4096).
        guard tsn - peerCumulativeTSN <= Self.maxTSNsAhead else { return }
        let limit = Int(configuration.receiveWindow) + (tsn == peerCumulativeTSN + 1 ? configuration.maxMessageSize : 0)
        guard reassembly.bufferedBytes + data.payload.count <= limit else { return }
        if tsn == peerCumulativeTSN + 1 {
            peerCumulativeTSN = tsn
            advanceCumulativeTSN()
        } else {
            let position = binarySearch(receivedAbove, tsn).index
            receivedAbove.insert(tsn, at: position)
        }
        if data.stream >= configuration.inboundStreams {
            // §6.5: acknowledged, not delivered, and reported (Invalid Stream Identifier).
            controlChunks.append(.error(causes: [SCTPErrorCause(code: SCTPErrorCause.invalidStreamIdentifier,
                                                                information: [UInt8(data.stream >> 8), UInt8(data.stream & 0xFF), 0, 0])]))
            return
        }
        for delivered in reassembly.insert(data, tsn: tsn) {
            statistics.messagesReceived += 1
            outputs.append(.event(.message(stream: delivered.stream, ppid: delivered.ppid, payload: delivered.payload)))
        }
        performDeferredResetIfReady()
    }

    private mutating func advanceCumulativeTSN() {
        var consumed = 0
        while consumed < receivedAbove.count, receivedAbove[consumed] <= peerCumulativeTSN + 1 {
            if receivedAbove[consumed] == peerCumulativeTSN + 1 { peerCumulativeTSN += 1 }
            consumed += 1
        }
        if consumed > 0 { receivedAbove.removeFirst(consumed) }
    }

    /// RFC 3758 §3.6: move the cumulative TSN, drop what it passes, skip the listed SSNs.
    private mutating func receiveForwardTSN(_ forward: ForwardTSNChunk) {
        guard isConnected else { return }
        statistics.forwardTSNsReceived += 1
        sackNow = true
        let newCumulative = widen(forward.newCumulativeTSN, near: peerCumulativeTSN)
        guard newCumulative > peerCumulativeTSN, newCumulative < peerCumulativeTSN + (1 << 31) else { return }
        peerCumulativeTSN = newCumulative
        if let firstKept = receivedAbove.firstIndex(where: { $0 > newCumulative }) {
            receivedAbove.removeFirst(firstKept)
        } else {
            receivedAbove = []
        }
        advanceCumulativeTSN()
        for delivered in reassembly.forward(to: newCumulative, skipped: forward.skipped) {
            statistics.messagesReceived += 1
            outputs.append(.event(.message(stream: delivered.stream, ppid: delivered.ppid, payload: delivered.payload)))
        }
        performDeferredResetIfReady()
    }

    private func makeSack() -> SackChunk {
        // Gap ack blocks: runs of TSNs above the cumulative one, as 16-bit offsets (§3.3.4), as many
        // as fit one packet.
        var blocks: [GapAckBlock] = []
        let room = (configuration.maxPacketSize - SCTPPacket.commonHeaderSize - 16) / 4 - duplicates.count
        var index = 0
        while index < receivedAbove.count, blocks.count < room {
            let start = receivedAbove[index]
            var end = start
            while index + 1 < receivedAbove.count, receivedAbove[index + 1] == end + 1 {
                index += 1
                end += 1
            }
            index += 1
            guard end - peerCumulativeTSN <= UInt64(UInt16.max) else { break }
            blocks.append(GapAckBlock(start: UInt16(start - peerCumulativeTSN), end: UInt16(end - peerCumulativeTSN)))
        }
        let window = max(0, Int(configuration.receiveWindow) - reassembly.bufferedBytes)
        return SackChunk(cumulativeTSNAck: UInt32(truncatingIfNeeded: peerCumulativeTSN),
                         advertisedReceiverWindow: UInt32(window), gapAckBlocks: blocks, duplicateTSNs: duplicates)
    }

    // MARK: SACK in (RFC 9260 §6.2.1, §7.2)

    private mutating func receiveSack(_ sack: SackChunk, now: MonotonicTime) {
        guard isConnected else { return }
        let cumulative = widen(sack.cumulativeTSNAck, near: cumulativeAckPoint)
        guard cumulative >= cumulativeAckPoint, cumulative < nextTSN else { return }  // old, or acks what was never sent
        let flightBefore = flightSize
        var bytesAcked = 0
        var rttSample: Duration?
        let advanced = cumulative > cumulativeAckPoint
        // Cumulatively acknowledged chunks leave the queue.
        while cumulativeAckPoint < cumulative {
            let entry = outstanding[outstandingHead]
            outstandingHead += 1
            cumulativeAckPoint += 1
            if entry.inFlight { flightSize -= entry.chunk.payload.count }
            if !entry.acked && !entry.abandoned {
                bytesAcked += entry.chunk.payload.count
                unackedBytes -= entry.chunk.payload.count
                release(entry.chunk.payload.count, on: entry.chunk.stream)
                if entry.transmissions == 1 { rttSample = now - entry.sentAt }  // Karn: only chunks sent once
            }
        }
        if advancedPeerAckPoint < cumulativeAckPoint { advancedPeerAckPoint = cumulativeAckPoint }
        compactOutstanding()
        // Gap ack blocks.
        var highestNewlyAcked: UInt64?
        for block in sack.gapAckBlocks where block.start <= block.end && block.start > 0 {
            let first = cumulative + UInt64(block.start), last = cumulative + UInt64(block.end)
            guard last < nextTSN else { continue }
            for tsn in first...last {
                let index = outstandingHead + Int(tsn - cumulativeAckPoint - 1)
                guard !outstanding[index].acked else { continue }
                outstanding[index].acked = true
                outstanding[index].retransmit = false
                if outstanding[index].inFlight {
                    outstanding[index].inFlight = false
                    flightSize -= outstanding[index].chunk.payload.count
                }
                if !outstanding[index].abandoned {
                    bytesAcked += outstanding[index].chunk.payload.count
                    unackedBytes -= outstanding[index].chunk.payload.count
                    release(outstanding[index].chunk.payload.count, on: outstanding[index].chunk.stream)
                    highestNewlyAcked = max(highestNewlyAcked ?? 0, tsn)
                    if outstanding[index].transmissions == 1 { rttSample = now - outstanding[index].sentAt }
                }
            }
        }
        if let rttSample { updateRTT(rttSample) }
        if bytesAcked > 0 { errorCount = 0 }

        // §7.2.4 fast retransmit: three miss indications. A TSN is counted missing only below the
        // highest TSN this SACK newly acknowledges (the HTNA rule, applied always: a SACK that
        // repeats old gap reports, e.g. for duplicates, is no new evidence of loss).
        var enteredFastRetransmit = false
        if let highest = highestNewlyAcked {
            for index in outstandingHead..<outstanding.count {
                guard outstanding[index].tsn < highest else { break }
                guard !outstanding[index].acked, !outstanding[index].abandoned, !outstanding[index].retransmit,
                      !outstanding[index].fastRetransmitted else { continue }
                outstanding[index].missingReports += 1
                if outstanding[index].missingReports >= 3 {
                    outstanding[index].fastRetransmitted = true
                    markForRetransmission(index, now: now)
                    enteredFastRetransmit = true
                }
            }
        }
        if enteredFastRetransmit {
            statistics.fastRetransmits += 1
            retransmitAllowance = true
            if fastRecoveryExit == nil {
                slowStartThreshold = max(congestionWindow / 2, 4 * configuration.maxPacketSize)
                congestionWindow = slowStartThreshold
                partialBytesAcked = 0
                fastRecoveryExit = nextTSN - 1
            }
        }
        if let exit = fastRecoveryExit, cumulativeAckPoint >= exit { fastRecoveryExit = nil }

        // §7.2.1, §7.2.2: grow cwnd when the cumulative ack moves and the window was in use.
        if advanced, fastRecoveryExit == nil, bytesAcked > 0, flightBefore + configuration.maxPacketSize >= congestionWindow {
            if congestionWindow <= slowStartThreshold {
                congestionWindow += min(bytesAcked, configuration.maxPacketSize)
            } else {
                partialBytesAcked += bytesAcked
                if partialBytesAcked >= congestionWindow {
                    partialBytesAcked -= congestionWindow
                    congestionWindow += configuration.maxPacketSize
                }
            }
        }
        if flightSize == 0 { partialBytesAcked = 0 }
        // §6.2.1: the peer's window less what is still in flight.
        peerReceiveWindow = max(0, Int(sack.advertisedReceiverWindow) - flightSize)

        abandonExpired(now: now)
        advancePeerAckPoint()
        // §6.3.2: T3 runs while anything is unacknowledged, restarted when the cumulative ack moves.
        if !hasUnacknowledged {
            t3 = nil
        } else if advanced || t3 == nil {
            t3 = now + retransmissionTimeout
        }
    }

    private var hasUnacknowledged: Bool {
        for index in outstandingHead..<outstanding.count where !outstanding[index].acked { return true }
        return false
    }

    private mutating func compactOutstanding() {
        if outstandingHead == outstanding.count {
            outstanding.removeAll(keepingCapacity: true)
            outstandingHead = 0
        } else if outstandingHead > 512, outstandingHead * 2 > outstanding.count {
            outstanding.removeFirst(outstandingHead)
            outstandingHead = 0
        }
    }

    /// §6.3.1.
    private mutating func updateRTT(_ sample: Duration) {
        let r = max(sample, .zero)
        if let srtt = smoothedRTT {
            let difference = srtt > r ? srtt - r : r - srtt
            rttVariation = rttVariation * 3 / 4 + difference / 4
            smoothedRTT = srtt * 7 / 8 + r / 8
        } else {
            smoothedRTT = r
            rttVariation = r / 2
        }
        retransmissionTimeout = min(max(smoothedRTT! + rttVariation * 4, configuration.rtoMin), configuration.rtoMax)
    }

    /// Takes a chunk out of flight to send again, unless its message is to be abandoned (RFC 3758 §3.5 A3).
    private mutating func markForRetransmission(_ index: Int, now: MonotonicTime) {
        let entry = outstanding[index]
        if entry.inFlight {
            outstanding[index].inFlight = false
            flightSize -= entry.chunk.payload.count
        }
        if entry.shouldAbandon(now: now, retransmitting: true) {
            abandonMessage(entry.messageID)
        } else {
            outstanding[index].retransmit = true
            retransmissionsMarked = true
        }
    }

    /// RFC 3758 §3.5: every chunk of the message is abandoned, and what was not yet sent is dropped.
    private mutating func abandonMessage(_ id: UInt64) {
        statistics.abandonedMessages += 1
        for index in outstandingHead..<outstanding.count where outstanding[index].messageID == id {
            if !outstanding[index].abandoned && !outstanding[index].acked {
                unackedBytes -= outstanding[index].chunk.payload.count
                release(outstanding[index].chunk.payload.count, on: outstanding[index].chunk.stream)
            }
            outstanding[index].abandoned = true
            outstanding[index].retransmit = false
            if outstanding[index].inFlight {
                outstanding[index].inFlight = false
                flightSize -= outstanding[index].chunk.payload.count
            }
        }
        if let message = pending.currentMessage(id: id) {
            pendingBytes -= message.payload.count - message.offset
            release(message.payload.count - message.offset, on: message.stream)
            pending.removeCurrent()
            if message.offset > 0 {
                // Part of it went out, the rest never will. Its sent fragments may all have been
                // acknowledged, and then a FORWARD TSN up to them would change nothing at the peer,
                // which would wait for the message's end (and, if ordered, hold its stream) forever.
                // So the missing end takes one TSN that is never sent, abandoned from the start:
                // the FORWARD TSN passes it and names the SSN.
                let tsn = nextTSN
                nextTSN += 1
                let end = DataChunk(tsn: UInt32(truncatingIfNeeded: tsn), stream: message.stream, ssn: message.ssn,
                                    ppid: message.ppid, unordered: message.unordered, beginning: false, ending: true, payload: [])
                var placeholder = OutstandingChunk(tsn: tsn, chunk: end, messageID: id, reliability: message.reliability,
                                                   created: message.created, sentAt: .zero)
                placeholder.abandoned = true
                placeholder.inFlight = false
                placeholder.transmissions = 0
                outstanding.append(placeholder)
            }
        }
    }

    /// Lifetime-limited chunks past their time are abandoned, sent or not (RFC 3758 §3.5 A2).
    private mutating func abandonExpired(now: MonotonicTime) {
        guard peerSupportsForwardTSN, usesLifetimes else { return }
        var index = outstandingHead
        while index < outstanding.count {
            let entry = outstanding[index]
            if !entry.acked, !entry.abandoned, case let .lifetime(limit) = entry.reliability, now - entry.created >= limit {
                abandonMessage(entry.messageID)
            }
            index += 1
        }
    }

    /// RFC 3758 §3.5 C1-C3: skip the abandoned chunks at the head; tell the peer with FORWARD TSN.
    private mutating func advancePeerAckPoint() {
        guard peerSupportsForwardTSN else { return }
        if advancedPeerAckPoint < cumulativeAckPoint { advancedPeerAckPoint = cumulativeAckPoint }
        var index = outstandingHead + Int(advancedPeerAckPoint - cumulativeAckPoint)
        while index < outstanding.count, outstanding[index].abandoned || outstanding[index].acked {
            // An acked chunk may be passed only if it is followed by more abandoned ones; stop at the last abandoned.
            if !outstanding[index].abandoned {
                var look = index
                while look < outstanding.count, outstanding[look].acked, !outstanding[look].abandoned { look += 1 }
                guard look < outstanding.count, outstanding[look].abandoned else { break }
            }
            advancedPeerAckPoint += 1
            index += 1
        }
        if advancedPeerAckPoint > cumulativeAckPoint { forwardTSNNeeded = true }
    }

    private func makeForwardTSN() -> ForwardTSNChunk {
        // The last SSN skipped on each ordered stream (RFC 3758 §3.2).
        var lastSSN: [UInt16: UInt16] = [:]
        var order: [UInt16] = []
        let count = Int(advancedPeerAckPoint - cumulativeAckPoint)
        for index in outstandingHead..<min(outstanding.count, outstandingHead + count) {
            let chunk = outstanding[index].chunk
            guard outstanding[index].abandoned, !chunk.unordered else { continue }
            if lastSSN[chunk.stream] == nil { order.append(chunk.stream) }
            lastSSN[chunk.stream] = chunk.ssn
        }
        let room = (configuration.maxPacketSize - SCTPPacket.commonHeaderSize - 8) / 4
        return ForwardTSNChunk(newCumulativeTSN: UInt32(truncatingIfNeeded: advancedPeerAckPoint),
                               skipped: order.prefix(room).map { .init(stream: $0, ssn: lastSSN[$0]!) })
    }

    // MARK: Heartbeats (RFC 9260 §8.3)

    private mutating func receiveHeartbeatAck(_ info: [UInt8], now: MonotonicTime) {
        guard isConnected, info.count == 16 else { return }
        var reader = ByteReader(info)
        guard let nonce = try? reader.readUInt64(), let sent = try? reader.readUInt64(), nonce == heartbeatNonce else { return }
        heartbeatNonce = nil
        errorCount = 0
        statistics.heartbeatAcksReceived += 1
        let sentAt = MonotonicTime(nanoseconds: sent)
        if now >= sentAt { updateRTT(now - sentAt) }
    }

    // MARK: Shutdown (RFC 9260 §9.2)

    private mutating func receiveShutdown(cumulative: UInt32, now: MonotonicTime) {
        switch state {
        case .established, .shutdownPending, .shutdownReceived:
            receiveSack(SackChunk(cumulativeTSNAck: cumulative, advertisedReceiverWindow: UInt32(clamping: peerReceiveWindow + flightSize)), now: now)
            state = .shutdownReceived
        case .shutdownSent:
            // Both sides shut down at once: answer with SHUTDOWN ACK (§9.2).
            state = .shutdownAckSent
            t2 = now + retransmissionTimeout
            send(chunks: [.shutdownAck], tag: peerTag)
        default:
            break
        }
    }

    // MARK: Stream reset (RFC 6525)

    private mutating func receiveReconfig(_ parameters: [ReconfigParameter], now: MonotonicTime) {
        guard isConnected else { return }
        for parameter in parameters {
            switch parameter {
            case let .outgoingResetRequest(sequence, _, lastTSN, streams):
                receiveOutgoingReset(sequence: sequence, lastTSN: lastTSN, streams: streams)
            case let .incomingResetRequest(sequence, _):
                // §5.2.3 asks us to reset our outgoing streams; data channels never do: deny.
                if sequence == peerNextRequestSequence {
                    peerNextRequestSequence &+= 1
                    lastResponse = (sequence, ReconfigParameter.Result.denied)
                }
                controlChunks.append(.reconfig([.response(responseSequence: sequence, result: ReconfigParameter.Result.denied)]))
            case let .response(sequence, result):
                guard let request = resetInFlight, request.sequence == sequence else { continue }
                switch result {
                case ReconfigParameter.Result.successPerformed, ReconfigParameter.Result.successNothingToDo:
                    for stream in request.streams {
                        outgoingSSN[stream] = nil
                        resettingStreams.remove(stream)
                    }
                    resetInFlight = nil
                    reconfigTimer = nil
                    nextRequestSequence &+= 1
                    outputs.append(.event(.outgoingStreamsReset(request.streams)))
                case ReconfigParameter.Result.inProgress:
                    reconfigTimer = now + retransmissionTimeout  // asked again when the timer fires
                default:
                    for stream in request.streams { resettingStreams.remove(stream) }
                    resetInFlight = nil
                    reconfigTimer = nil
                    nextRequestSequence &+= 1
                    outputs.append(.event(.outgoingStreamsResetFailed(request.streams)))
                }
            case .other:
                break
            }
        }
    }

    /// §5.2.2: the reset happens once every TSN the peer sent before it has arrived.
    private mutating func receiveOutgoingReset(sequence: UInt32, lastTSN: UInt32, streams: [UInt16]) {
        if sequence == peerNextRequestSequence {
            let last = widen(lastTSN, near: peerCumulativeTSN)
            if last <= peerCumulativeTSN {
                performIncomingReset(sequence: sequence, streams: streams)
            } else {
                deferredIncomingReset = (sequence, streams, last)
                controlChunks.append(.reconfig([.response(responseSequence: sequence, result: ReconfigParameter.Result.inProgress)]))
            }
        } else if let lastResponse, sequence == lastResponse.sequence {
            // A retransmission: the same answer again (§5.2.1).
            controlChunks.append(.reconfig([.response(responseSequence: sequence, result: lastResponse.result)]))
        } else {
            controlChunks.append(.reconfig([.response(responseSequence: sequence,
                                                      result: ReconfigParameter.Result.errorBadSequenceNumber)]))
        }
    }

    private mutating func performIncomingReset(sequence: UInt32, streams: [UInt16]) {
        reassembly.reset(streams: streams)
        peerNextRequestSequence = sequence &+ 1
        lastResponse = (sequence, ReconfigParameter.Result.successPerformed)
        deferredIncomingReset = nil
        controlChunks.append(.reconfig([.response(responseSequence: sequence, result: ReconfigParameter.Result.successPerformed)]))
        outputs.append(.event(.incomingStreamsReset(streams)))
    }

    private mutating func performDeferredResetIfReady() {
        if let deferred = deferredIncomingReset, deferred.lastTSN <= peerCumulativeTSN {
            performIncomingReset(sequence: deferred.sequence, streams: deferred.streams)
        }
    }

    // MARK: - Timers

    private mutating func handleTimeout(now: MonotonicTime) {
        guard state != .closed else { return }
        if let deadline = t1, now >= deadline, let chunk = t1Chunk {
            // §5.1 T1-init / T1-cookie: resend with backoff, give up after Max.Init.Retransmits.
            t1Count += 1
            if t1Count > configuration.maxInitRetransmits {
                close(.unreachable)
                return
            }
            backOff()
            send(chunks: [chunk], tag: state == .cookieWait ? 0 : peerTag)
            t1 = now + retransmissionTimeout
        }
        if let deadline = t2, now >= deadline {
            // §9.2 T2-shutdown.
            guard countError() else { return }
            backOff()
            send(chunks: [state == .shutdownSent ? .shutdown(cumulativeTSNAck: UInt32(truncatingIfNeeded: peerCumulativeTSN)) : .shutdownAck],
                 tag: peerTag)
            t2 = now + retransmissionTimeout
        }
        if let deadline = t3, now >= deadline {
            retransmissionTimeoutFired(now: now)
            guard state != .closed else { return }
        }
        if let deadline = delayedAck, now >= deadline {
            sackNow = true
        }
        if let deadline = reconfigTimer, now >= deadline, let request = resetInFlight {
            guard countError() else { return }
            backOff()
            controlChunks.append(resetRequestChunk(request))
            reconfigTimer = now + retransmissionTimeout
        }
        if let deadline = heartbeatDeadline, now >= deadline, isConnected {
            if heartbeatNonce != nil {
                guard countError() else { return }  // the last heartbeat went unanswered
                backOff()
            }
            let nonce = random.next()
            heartbeatNonce = nonce
            var writer = ByteWriter(capacity: 16)
            writer.write(nonce)
            writer.write(now.nanoseconds)
            controlChunks.append(.heartbeat(info: writer.bytes))
            statistics.heartbeatsSent += 1
            heartbeatDeadline = now + configuration.heartbeatInterval + retransmissionTimeout
        }
    }

    private mutating func backOff() {
        retransmissionTimeout = min(retransmissionTimeout * 2, configuration.rtoMax)
    }

    /// One more unanswered timeout; false (and the association closed) past Association.Max.Retrans (§8.1).
    private mutating func countError() -> Bool {
        errorCount += 1
        if errorCount > configuration.maxAssociationRetransmits {
            send(chunks: [.abort(reflected: false, causes: [])], tag: peerTag)
            close(.unreachable)
            return false
        }
        return true
    }

    /// §6.3.3: T3-rtx expired.
    private mutating func retransmissionTimeoutFired(now: MonotonicTime) {
        statistics.retransmissionTimeouts += 1
        guard countError() else { return }
        slowStartThreshold = max(congestionWindow / 2, 4 * configuration.maxPacketSize)
        congestionWindow = configuration.maxPacketSize
        partialBytesAcked = 0
        fastRecoveryExit = nil
        backOff()
        for index in outstandingHead..<outstanding.count where !outstanding[index].acked && !outstanding[index].abandoned {
            markForRetransmission(index, now: now)
        }
        abandonExpired(now: now)
        advancePeerAckPoint()
        retransmitAllowance = true
        t3 = hasUnacknowledged ? now + retransmissionTimeout : nil
    }

    // MARK: - Sending packets

    private mutating func send(chunks: [SCTPChunk], tag: UInt32) {
        let packet = SCTPPacket(sourcePort: configuration.localPort, destinationPort: configuration.remotePort,
                                verificationTag: tag, chunks: chunks)
        outputs.append(.transmit(packet.serialized()))
        statistics.packetsSent += 1
    }

    private func resetRequestChunk(_ request: (sequence: UInt32, streams: [UInt16], lastTSN: UInt32)) -> SCTPChunk {
        .reconfig([.outgoingResetRequest(requestSequence: request.sequence, responseSequence: peerNextRequestSequence &- 1,
                                         senderLastTSN: request.lastTSN, streams: request.streams)])
    }

    /// Everything due now, bundled into as few packets as fit: control chunks, SACK, FORWARD TSN,
    /// stream reset, retransmissions, then new data as cwnd and the peer's window allow.
    private mutating func flush(now: MonotonicTime) {
        guard isConnected else {
            controlChunks = []
            return
        }
        var builder = PacketBuilder(maxSize: configuration.maxPacketSize)
        if sackNow {
            builder.add(.sack(makeSack()), into: &self)
            sackNow = false
            packetsSinceSack = 0
            delayedAck = nil
            duplicates = []
        }
        for chunk in controlChunks { builder.add(chunk, into: &self) }
        controlChunks = []
        if forwardTSNNeeded {
            forwardTSNNeeded = false
            if advancedPeerAckPoint > cumulativeAckPoint {
                builder.add(.forwardTSN(makeForwardTSN()), into: &self)
                statistics.forwardTSNsSent += 1
                if t3 == nil { t3 = now + retransmissionTimeout }
            }
        }
        // Stream reset: when nothing queued for the streams is left without a TSN (§5.1.2).
        if resetInFlight == nil, !streamsToReset.isEmpty, !hasPendingData(on: streamsToReset) {
            let request = (sequence: nextRequestSequence, streams: streamsToReset,
                           lastTSN: UInt32(truncatingIfNeeded: nextTSN - 1))
            streamsToReset = []
            resetInFlight = request
            builder.add(resetRequestChunk(request), into: &self)
            reconfigTimer = now + retransmissionTimeout
        }
        if state == .established || state == .shutdownPending || state == .shutdownReceived {
            sendRetransmissions(&builder, now: now)
            sendNewData(&builder, now: now)
        }
        builder.finish(into: &self)

        // §9.2: SHUTDOWN or SHUTDOWN ACK once everything sent has been acknowledged.
        if (state == .shutdownPending || state == .shutdownReceived), pending.isEmpty, !hasUnacknowledged,
           outstandingHead == outstanding.count {
            if state == .shutdownPending {
                state = .shutdownSent
                send(chunks: [.shutdown(cumulativeTSNAck: UInt32(truncatingIfNeeded: peerCumulativeTSN))], tag: peerTag)
            } else {
                state = .shutdownAckSent
                send(chunks: [.shutdownAck], tag: peerTag)
            }
            t3 = nil
            t2 = now + retransmissionTimeout
        }
    }

    private func hasPendingData(on streams: [UInt16]) -> Bool {
        pending.hasMessages(on: streams)
    }

    private mutating func sendRetransmissions(_ builder: inout PacketBuilder, now: MonotonicTime) {
        guard retransmissionsMarked else {
            retransmitAllowance = false
            return
        }
        retransmissionsMarked = false
        var index = outstandingHead
        while index < outstanding.count {
            defer { index += 1 }
            guard outstanding[index].retransmit else { continue }
            let size = outstanding[index].chunk.payload.count
            if retransmitAllowance, builder.wouldStartNewPacket(SCTPChunk.data(outstanding[index].chunk)), builder.hasData {
                retransmitAllowance = false
            }
            if !retransmitAllowance, flightSize >= congestionWindow {
                retransmissionsMarked = true  // the rest waits for room in cwnd
                break
            }
            outstanding[index].retransmit = false
            outstanding[index].inFlight = true
            outstanding[index].transmissions += 1
            outstanding[index].sentAt = now
            outstanding[index].missingReports = 0
            flightSize += size
            statistics.retransmittedChunks += 1
            lastDataSent = now
            builder.add(.data(outstanding[index].chunk), into: &self)
            if t3 == nil { t3 = now + retransmissionTimeout }
        }
        retransmitAllowance = false
    }

    private mutating func sendNewData(_ builder: inout PacketBuilder, now: MonotonicTime) {
        let fragmentSize = configuration.maxFragmentSize
        // §7.2.1: after an idle time, cwnd halves (down to 4 MTU) for every RTO that passed without
        // DATA, so a long-quiet sender does not burst a stale window into the network.
        if flightSize == 0, let last = lastDataSent, !pending.isEmpty {
            var idle = now - last
            let floor = 4 * configuration.maxPacketSize
            while idle >= retransmissionTimeout, congestionWindow > floor {
                congestionWindow = max(congestionWindow / 2, floor)
                idle -= retransmissionTimeout
            }
        }
        // Windows count payload bytes, so tiny messages could put a great many TSNs in flight; no
        // more than a receiver keeps (maxTSNsAhead) go out.
        while flightSize < congestionWindow, outstanding.count - outstandingHead < Int(Self.maxTSNsAhead),
              var message = pending.next() {
            if message.offset == 0, case let .lifetime(limit) = message.reliability, now - message.created >= limit {
                // Never sent: dropped without using a TSN or an SSN.
                statistics.abandonedMessages += 1
                pendingBytes -= message.payload.count
                release(message.payload.count, on: message.stream)
                pending.removeCurrent()
                continue
            }
            let length = min(fragmentSize, message.payload.count - message.offset)
            // §6.1 rule A: respect the peer's window, but one chunk may probe a zero window when nothing is in flight.
            guard peerReceiveWindow >= length || flightSize == 0 else { break }
            if message.offset == 0 {
                if message.unordered {
                    message.ssn = 0
                } else {
                    let ssn = outgoingSSN[message.stream] ?? 0
                    message.ssn = ssn
                    outgoingSSN[message.stream] = ssn &+ 1
                }
            }
            let tsn = nextTSN
            nextTSN += 1
            let chunk = DataChunk(tsn: UInt32(truncatingIfNeeded: tsn), stream: message.stream, ssn: message.ssn,
                                  ppid: message.ppid, unordered: message.unordered, beginning: message.offset == 0,
                                  ending: message.offset + length == message.payload.count,
                                  payload: message.payload[message.offset..<message.offset + length])
            message.offset += length
            pendingBytes -= length
            if message.offset == message.payload.count {
                pending.removeCurrent()
            } else {
                pending.updateCurrent(message)
            }
            outstanding.append(OutstandingChunk(tsn: tsn, chunk: chunk, messageID: message.id, reliability: message.reliability,
                                                created: message.created, sentAt: now))
            flightSize += length
            unackedBytes += length
            peerReceiveWindow = max(0, peerReceiveWindow - length)
            statistics.dataChunksSent += 1
            lastDataSent = now
            builder.add(.data(chunk), into: &self)
            if t3 == nil { t3 = now + retransmissionTimeout }
        }
    }

    fileprivate mutating func emitPacket(_ chunks: [SCTPChunk]) {
        send(chunks: chunks, tag: peerTag)
    }

    private mutating func close(_ reason: SCTPCloseReason) {
        guard state != .closed else { return }
        state = .closed
        t1 = nil; t2 = nil; t3 = nil; delayedAck = nil; heartbeatDeadline = nil; reconfigTimer = nil
        pending.removeAll(); pendingBytes = 0
        outstanding = []; outstandingHead = 0; unackedBytes = 0; bufferedByStream = [:]
        controlChunks = []
        outputs.append(.event(.closed(reason)))
    }
}

/// Chunks gathered into packets no larger than the path allows (RFC 9260 §6.10 bundling).
private struct PacketBuilder {
    let maxSize: Int
    var chunks: [SCTPChunk] = []
    var size = SCTPPacket.commonHeaderSize
    var hasData = false

    init(maxSize: Int) { self.maxSize = maxSize }

    func wouldStartNewPacket(_ chunk: SCTPChunk) -> Bool {
        !chunks.isEmpty && size + chunk.paddedSize > maxSize
    }

    mutating func add(_ chunk: SCTPChunk, into association: inout SCTPAssociation) {
        if wouldStartNewPacket(chunk) { finish(into: &association) }
        chunks.append(chunk)
        size += chunk.paddedSize
        if case .data = chunk { hasData = true }
    }

    mutating func finish(into association: inout SCTPAssociation) {
        guard !chunks.isEmpty else { return }
        association.emitPacket(chunks)
        chunks = []
        size = SCTPPacket.commonHeaderSize
        hasData = false
    }
}

struct OutgoingMessage: Sendable {
    var id: UInt64
    var stream: UInt16
    var ppid: UInt32
    var unordered: Bool
    var payload: [UInt8]
    var reliability: SCTPReliability
    var created: MonotonicTime
    var offset = 0
    var ssn: UInt16 = 0

    static let done = OutgoingMessage(id: .max, stream: 0, ppid: 0, unordered: false, payload: [], reliability: .reliable, created: .zero)
}

struct OutstandingChunk: Sendable {
    var tsn: UInt64
    var chunk: DataChunk
    var messageID: UInt64
    var reliability: SCTPReliability
    var created: MonotonicTime
    var sentAt: MonotonicTime
    var transmissions = 1
    var missingReports = 0
    var acked = false
    var abandoned = false
    var retransmit = false
    var inFlight = true
    var fastRetransmitted = false

    init(tsn: UInt64, chunk: DataChunk, messageID: UInt64, reliability: SCTPReliability, created: MonotonicTime, sentAt: MonotonicTime) {
        self.tsn = tsn
        self.chunk = chunk
        self.messageID = messageID
        self.reliability = reliability
        self.created = created
        self.sentAt = sentAt
    }

    func shouldAbandon(now: MonotonicTime, retransmitting: Bool) -> Bool {
        switch reliability {
        case .reliable: return false
        case let .maxRetransmits(limit): return retransmitting && transmissions > limit
        case let .lifetime(limit): return now - created >= limit
        }
    }
}

func binarySearch(_ sorted: [UInt64], _ value: UInt64) -> (found: Bool, index: Int) {
    var low = 0, high = sorted.count
    while low < high {
        let mid = (low + high) / 2
        if sorted[mid] < value { low = mid + 1 } else { high = mid }
    }
    return (low < sorted.count && sorted[low] == value, low)
}
